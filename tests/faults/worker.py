"""One rbdnb operation in a process of its own, for the fault suite to kill, freeze or starve.

    python -m tests.faults.worker OPERATION JSON-ARGS

Prints ``progress DONE TOTAL`` lines as the operation advances (flushed at once, so the
test can kill it at a chosen point), then ``result ...`` or ``error TYPE: message``.
"""
import json
import sys
import time

import rbdnb


def progress(done, total):
    print(f"progress {done} {total}", flush=True)


def main(operation: str, args: dict) -> int:
    cluster = rbdnb.connect(args.pop("conf"), timeout=args.pop("timeout", 30))
    calls = {
        "clone_many": lambda: rbdnb.clone_many(cluster, progress=progress, **args),
        "import": lambda: rbdnb.import_image(cluster, progress=progress, **args),
        "export": lambda: rbdnb.export_image(cluster, progress=progress, **args),
        "flatten": lambda: rbdnb.flatten(cluster, progress=progress, **args),
        "copy": lambda: rbdnb.copy_image(cluster, **args),
        "golden": lambda: " | ".join(r.message for r in (
            rbdnb.import_image(cluster, args["source"], args["dest"], exist_ok=True),
            rbdnb.create_snapshot(cluster, args["dest"] + "@base", exist_ok=True))),
    }
    t0 = time.monotonic()
    try:
        result = calls[operation]()
    except rbdnb.RbdnbError as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        print(f"seconds {time.monotonic() - t0:.2f}", flush=True)
    print(f"result {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
