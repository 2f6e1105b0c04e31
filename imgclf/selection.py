"""Which model a run keeps: of the linear probe, the transfer model and the fine-tuned model
(cheapest first), a costlier one replaces a cheaper one only when it is right on more val
images by more than noise, in a paired comparison of the images each gets right. A
one-image difference on a small val split is noise: the cheaper model stays."""
import math

import numpy as np

from imgclf.dataset import is_multi_label
from imgclf.multilabel import decide

CANDIDATES = ("probe", "transfer", "finetuned")  # cheapest first


def right_answers(probabilities, labels, thresholds=None):
    """One bool per val image (multi_label: per image and label) that the model gets right."""
    if is_multi_label(labels):
        return (decide(probabilities, thresholds) == np.asarray(labels, bool)).ravel()
    return np.argmax(probabilities, axis=1) == np.asarray(labels)


def paired(costlier, cheaper):
    """(won, lost, better): the answers only the costlier model gets right, those only the
    cheaper one gets right, and whether the difference is more than noise: at least two, and
    more than one standard deviation of a difference between two models that are equally
    good (sqrt(won + lost): McNemar's test, one-sided at about 84%)."""
    won = int(np.sum(costlier & ~cheaper))
    lost = int(np.sum(~costlier & cheaper))
    return won, lost, won - lost >= 2 and won - lost > math.sqrt(won + lost)


def choose(right):
    """right: {candidate: right_answers} for the candidates a run has, in CANDIDATES order.
    Returns (the kept one, why: one line)."""
    names = [name for name in CANDIDATES if name in right]
    kept = names[0]
    reasons = []
    for name in names[1:]:
        won, lost, better = paired(right[name], right[kept])
        worse = paired(right[kept], right[name])[2]
        verdict = "better by more than noise" if better else (
            "worse by more than noise" if worse else "within noise")
        reasons.append(f"{name} against {kept}: {won} won, {lost} lost on val, {verdict}")
        if better:
            kept = name
    total = len(right[kept])
    line = f"{kept}: right on {int(right[kept].sum())} of {total} val answers"
    return kept, "; ".join([line, *reasons])
