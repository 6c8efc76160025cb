#!/usr/bin/python3
"""CPU time of PyTorch's loss, gradient and HVP, per call, for bench/hvp.ts.

On a shared machine wall times measure the neighbours as much as the code; process CPU time
(time.process_time: all threads of this process) does not. Run with one thread it is directly
comparable to one cusp worker's CPU time. The model, parameter layout and computations are the
PyTorch peer's own (bench/peers/torch_hessian.py, imported, not copied); inputs are the same DIR.

Usage: /usr/bin/python3 bench/support/torch_cpu_time.py DIR [threads=1] [repeats=3]
Prints one JSON line: {"threads", "repeats", "cpu_ms": {"loss","grad","hvp"}, "wall_ms": {...}}
(medians; one warm-up call each first).
"""
import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('torch_hessian', os.path.join(here, '..', 'peers', 'torch_hessian.py'))
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)


def main(argv):
    d = argv[0]
    threads = int(argv[1]) if len(argv) > 1 else 1
    repeats = int(argv[2]) if len(argv) > 2 else 3
    torch.set_num_threads(threads)
    header, theta_np, x_np, y_np, v_np = peer.read_inputs(d, True)
    reduction = header.get('reduction', 'mean')
    forward, _, _ = peer.make_forward(header['spec'])
    theta = torch.from_numpy(theta_np.astype(np.float32))
    x = torch.from_numpy(x_np.astype(np.float32)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y = torch.from_numpy(y_np.astype(np.int64))
    v = torch.from_numpy(v_np.astype(np.float32))
    ops = (('loss', lambda: peer.loss_fn(forward, theta, x, y, reduction)),
           ('grad', lambda: peer.gradient(forward, theta, x, y, reduction)),
           ('hvp', lambda: peer.hvp(forward, theta, v, x, y, reduction)))
    cpu, wall = {}, {}
    for key, fn in ops:
        with torch.no_grad() if key == 'loss' else torch.enable_grad():
            fn()
            c, w = [], []
            for _ in range(repeats):
                c0, w0 = time.process_time(), time.perf_counter()
                fn()
                c.append((time.process_time() - c0) * 1e3)
                w.append((time.perf_counter() - w0) * 1e3)
        cpu[key] = round(statistics.median(c), 1)
        wall[key] = round(statistics.median(w), 1)
    print(json.dumps({'threads': torch.get_num_threads(), 'repeats': repeats, 'cpu_ms': cpu, 'wall_ms': wall}))


if __name__ == '__main__':
    main(sys.argv[1:])
