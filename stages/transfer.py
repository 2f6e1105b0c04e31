"""transfer: train the new head on the cached backbone features (backbone frozen).

Seconds, not minutes: the backbone ran once, in the features stage. Writes models/head.keras,
metrics/transfer.json and the epoch history in dvclive/transfer/ (dvclive). A killed run
resumes from backups/transfer/ (imgclf.backup).
"""
from imgclf import backup as backup_lib
from imgclf import compute
from imgclf import features as features_lib
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import read_classes
from imgclf.errors import run_stage
from imgclf.files import replaced_when_done, write_json
from imgclf.head import train_head
from imgclf.training import open_live

FEATURES = "data/features"
HEAD = "models/head.keras"
METRICS = "metrics/transfer.json"
LIVE = "dvclive/transfer"
BACKUP = "backups/transfer"


def main():
    params = params_lib.load()
    strategy, jit_compile = compute.apply(params["compute"])
    compute.set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    classes = read_classes(FEATURES)
    train, val = features_lib.load(FEATURES, "train"), features_lib.load(FEATURES, "val")
    if not features_lib.is_cached(FEATURES):  # weights: none: nothing to train on
        head = model_lib.build_head(train[0].shape[1:], len(classes), **params["head"],
                                    multi_label=params["task"] == "multi_label")
        with replaced_when_done(HEAD) as tmp:
            head.save(tmp)
        open_live(LIVE).end()  # an empty history
        write_json(METRICS, {"epochs_run": 0, "best_epoch": 0, "seconds": 0.0})
        return ("transfer: no cached features (weights: none); the head is left untrained "
                "and finetune trains it with the whole network")
    made_from = backup_lib.fingerprint(params, [FEATURES, __file__],
                                       compute.resolved(params["compute"], strategy, jit_compile))
    with open_live(LIVE) as live:
        head, metrics = train_head(train, val, classes, params, live, strategy, jit_compile,
                                   (BACKUP, made_from))
    with replaced_when_done(HEAD) as tmp:
        compute.float32_copy(head).save(tmp)
    write_json(METRICS, metrics)
    backup_lib.discard(BACKUP)
    return (f"transfer: best val accuracy {metrics['best_val_accuracy']:.4f} at epoch "
            f"{metrics['best_epoch']} of {metrics['epochs_run']} (training {metrics['seconds']} s; "
            f"{compute.summary(strategy, jit_compile)})")


if __name__ == "__main__":
    run_stage(main)
