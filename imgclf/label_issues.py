"""Likely label errors (the audit stage), found on the frozen backbone's pooled features.

Every image gets class probabilities from a linear probe that never saw it: K-fold
cross-validation over train and val, and the test images through every fold's model,
averaged. Then the confident-learning rule (Northcutt, Jiang and Chuang, JAIR 2021): a
class's threshold is its typical self-confidence, the mean probability the images given that
class get for it; an image is suspect when the probability of its given label is below that
label's threshold while another class's is at or above its own. Suspects are ranked by how
unlikely their given label is (1 - its probability: the ranking the paper's authors found
best). cleanlab implements the same rule, but is AGPL-licensed; this is a few lines of NumPy.
"""
import warnings

import numpy as np

from imgclf.dataset import is_multi_label


def probe_model(strength, seed, multi_label):
    """A standardised logistic regression (one per label for multi_label), as the probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(),
                         OneVsRestClassifier(classifier) if multi_label else classifier)


def class_columns(model, features, class_count, multi_label):
    """model's probabilities with a column for every class; a class the model's training
    folds lacked gets 0 (multi_label models have every label's column already)."""
    probabilities = model.predict_proba(features)
    if multi_label:
        return probabilities
    columns = np.zeros((len(features), class_count))
    columns[:, model.classes_] = probabilities
    return columns


def fold_count(labels, folds):
    """folds, or fewer when no class (no row, for multi_label) has that many images; a rarer
    class only makes scikit-learn warn that its folds are uneven (at least 2 folds)."""
    if is_multi_label(labels):
        return max(2, min(folds, len(labels)))
    return max(2, min(folds, np.bincount(labels).max()))


def fold_model(features, labels, strength, seed, multi_label):
    """The probe fitted on one fold's rows; a fold whose rows hold a single class (a class
    with one image, held out) gets a model that always answers that class."""
    from sklearn.dummy import DummyClassifier

    if not multi_label and len(np.unique(labels)) < 2:
        return DummyClassifier(strategy="most_frequent").fit(features, labels)
    return probe_model(strength, seed, multi_label).fit(features, labels)


def out_of_sample(features, labels, held_out, class_count, folds, strength, seed):
    """(probabilities of each image of features from the fold whose model did not train on
    it; held_out images' probabilities, the mean over every fold's model)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    multi_label = is_multi_label(labels)
    count = fold_count(labels, folds)
    splitter = (KFold if multi_label else StratifiedKFold)(count, shuffle=True, random_state=seed)
    probabilities = np.zeros((len(features), class_count))
    held_out_probabilities = np.zeros((len(held_out), class_count))
    with warnings.catch_warnings():  # a class rarer than the folds; a label always 0 in a fold
        warnings.simplefilter("ignore", UserWarning)
        for fit_rows, predict_rows in splitter.split(features, labels):
            model = fold_model(features[fit_rows], labels[fit_rows], strength, seed, multi_label)
            probabilities[predict_rows] = class_columns(model, features[predict_rows],
                                                        class_count, multi_label)
            if len(held_out):
                held_out_probabilities += class_columns(model, held_out, class_count,
                                                        multi_label) / count
    return probabilities, held_out_probabilities


def thresholds(probabilities, labels, fewest=2):
    """Each class's typical self-confidence: the mean probability of the class over the
    images given it. NaN, so that the class never takes part, for a class fewer than
    `fewest` images are given, or whose images all get (about) 0 for it: a threshold of 0
    would make every image confident of it."""
    given = np.eye(probabilities.shape[1], dtype=bool)[labels]
    counts = given.sum(axis=0)
    means = (probabilities * given).sum(axis=0) / np.maximum(counts, 1)
    return np.where((counts >= fewest) & (means > 1e-6), means, np.nan)


def single_label_issues(probabilities, labels):
    """[(image index, suggested class, score)] of the suspects, most suspect first: the
    given label below its threshold and another class at or above its own (the most
    probable such class is the suggestion); score is 1 - the given label's probability."""
    limits = thresholds(probabilities, labels)
    rows = np.arange(len(labels))
    given = probabilities[rows, labels]
    confident = (probabilities >= np.nan_to_num(limits, nan=np.inf)) & (probabilities > 0)
    confident[rows, labels] = False
    others = np.where(confident, probabilities, -1.0)
    suspect = (given < limits[labels]) & confident.any(axis=1)  # NaN: never below it
    issues = [(int(i), int(others[i].argmax()), float(1 - given[i])) for i in rows[suspect]]
    return sorted(issues, key=lambda issue: -issue[2])


def multi_label_issues(probabilities, labels):
    """[(image index, label, given, score)]: a label given but confidently absent (its
    probability at or below the typical probability the images without it get for being
    without it), or absent but confidently present (at or above the typical probability of
    the images given it); score is how unlikely the given state is. Most suspect first."""
    labels = np.asarray(labels, bool)
    issues = []
    for label in range(labels.shape[1]):
        has, column = labels[:, label], probabilities[:, label]
        if min(has.sum(), (~has).sum()) < 2:
            continue  # (almost) one state only: nothing to compare with
        present_limit, absent_limit = column[has].mean(), (1 - column[~has]).mean()
        if min(present_limit, absent_limit) <= 1e-6:
            continue  # a threshold of 0 would make every image confident
        for i in np.flatnonzero(has & (1 - column >= absent_limit) & (column < present_limit)):
            issues.append((int(i), label, True, float(1 - column[i])))
        for i in np.flatnonzero(~has & (column >= present_limit) & (1 - column < absent_limit)):
            issues.append((int(i), label, False, float(column[i])))
    return sorted(issues, key=lambda issue: -issue[3])
