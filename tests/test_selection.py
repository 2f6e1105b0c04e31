"""The final model is the cheapest that no costlier one beats on val by more than noise."""
import numpy as np

from imgclf import selection


def answers(right, total=100):
    return np.arange(total) < right


def test_a_one_image_lead_is_noise_and_the_cheaper_model_stays():
    kept, why = selection.choose({"probe": answers(90), "transfer": answers(91),
                                  "finetuned": answers(91)})
    assert kept == "probe", why
    assert why.startswith("probe: right on 90 of 100 val answers")
    assert "transfer against probe: 1 won, 0 lost on val, within noise" in why


def test_a_clear_lead_replaces_the_cheaper_model():
    kept, why = selection.choose({"probe": answers(80), "transfer": answers(81),
                                  "finetuned": answers(95)})
    assert kept == "finetuned", why
    assert "transfer against probe: 1 won, 0 lost on val, within noise" in why
    assert "finetuned against probe: 15 won, 0 lost on val, better by more than noise" in why
    kept, why = selection.choose({"probe": answers(80), "transfer": answers(84),
                                  "finetuned": answers(85)})
    assert kept == "transfer" and "finetuned against transfer: 1 won" in why


def test_the_comparison_is_paired_not_a_difference_of_accuracies():
    # Both right on 60 of 100, but on different images: a swap, no gain.
    cheaper = answers(60)
    costlier = np.roll(cheaper, 20)
    assert selection.paired(costlier, cheaper) == (20, 20, False)
    # Three more right and none lost is more than noise; 12 won against 9 lost is not.
    assert selection.paired(answers(63), answers(60))[2]
    swapped = np.zeros(100, bool)
    swapped[:12] = True
    base = np.zeros(100, bool)
    base[12:21] = True
    assert selection.paired(swapped, base) == (12, 9, False)


def test_a_model_worse_than_the_probe_is_never_kept():
    kept, why = selection.choose({"probe": answers(90), "transfer": answers(85),
                                  "finetuned": answers(88)})
    assert kept == "probe"
    assert "transfer against probe: 0 won, 5 lost on val, worse by more than noise" in why
    assert "finetuned against probe: 0 won, 2 lost on val, worse by more than noise" in why


def test_without_a_probe_the_transfer_model_is_the_baseline():
    kept, why = selection.choose({"transfer": answers(50), "finetuned": answers(70)})
    assert kept == "finetuned" and why.startswith("finetuned: right on 70")


def test_multi_label_answers_are_each_label_decision():
    probabilities = np.array([[0.9, 0.2], [0.4, 0.7]])
    labels = np.array([[1, 0], [1, 1]], np.uint8)
    right = selection.right_answers(probabilities, labels, np.array([0.5, 0.5]))
    assert right.tolist() == [True, True, False, True]
    assert selection.right_answers(probabilities, np.array([0, 0])).tolist() == [True, False]
