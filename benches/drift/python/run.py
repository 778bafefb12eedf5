"""Peer runner: end-to-end drift detection with a Python differ.

usage: python3 run.py jsondiff|deepdiff DIR
Prints one line of key=value pairs like the Rust harness.
"""
import json
import os
import sys
import time

tool, d = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
with open(os.path.join(d, "desired.json"), "rb") as f:
    d_bytes = f.read()
with open(os.path.join(d, "live.json"), "rb") as f:
    l_bytes = f.read()
read = time.perf_counter() - t0
t1 = time.perf_counter()
desired = json.loads(d_bytes)
live = json.loads(l_bytes)
parse = time.perf_counter() - t1
t2 = time.perf_counter()
if tool == "jsondiff":
    import jsondiff

    result = jsondiff.diff(live, desired, syntax="explicit", dump=True)
    count = result.count('"$')  # rough: one per change record
elif tool == "deepdiff":
    from deepdiff import DeepDiff

    # ignore_order: the only way deepdiff avoids reporting reordered lists.
    dd = DeepDiff(live, desired, ignore_order=True)
    result = dd.to_json()
    count = sum(len(v) if hasattr(v, "__len__") else 1 for v in dd.values())
else:
    raise SystemExit("unknown tool " + tool)
diff = time.perf_counter() - t2
t3 = time.perf_counter()
out = result if isinstance(result, str) else json.dumps(result)
render = time.perf_counter() - t3
total = time.perf_counter() - t0
mb = (len(d_bytes) + len(l_bytes)) / 1e6
print(
    f"tool={tool} total_s={total:.3f} read_s={read:.3f} parse_s={parse:.3f} "
    f"parse_mb_s={mb / parse:.0f} diff_s={diff:.3f} render_s={render:.3f} "
    f"differences={count} report_bytes={len(out)}"
)
