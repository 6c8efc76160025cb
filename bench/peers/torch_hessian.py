#!/usr/bin/python3
"""Independent PyTorch oracle and timing peer for cusp's science engine.

Rebuilds cusp's model families (src/science/models.ts: mlp, cnn, alexnet, vgg16) from the same spec with
PyTorch functional ops, loads cusp's flat parameter vector, and computes the loss, gradient,
Hessian-vector product (double backward) and, for small models, the exact Hessian spectrum
(full float64 Hessian assembled row by row from HVPs, then torch.linalg.eigvalsh). It shares no code
with cusp: only the spec, the flat-vector layout and the data cross over, through files.

Usage:
    /usr/bin/python3 bench/peers/torch_hessian.py DIR...       # oracle: read each DIR/header.json, write results
    /usr/bin/python3 bench/peers/torch_hessian.py --time DIR   # benchmark: print one JSON line of medians
    ... --time --device cuda DIR     # the same products on the GPU (fp32, TF32 off; synchronised timing)
    /usr/bin/python3 bench/peers/torch_hessian.py --blas       # print the BLAS this process loaded (JSON)

The --time line also says which BLAS the process actually loaded (from /proc/self/maps), OpenBLAS's
own configuration and thread count when it is OpenBLAS, torch's BLAS_INFO and thread counts, and the
process's peak RSS: Debian's python3-torch calls whatever libblas.so.3 the system provides, and the
reference (netlib) BLAS is ~20x slower on matrix products than OpenBLAS, a handicapped peer.

Input, all in DIR (raw binaries are little-endian, C order, no header):
    header.json   {
                    "spec": ModelSpec (arch 'mlp'|'cnn'|'alexnet'|'vgg16', activation 'relu'|'tanh',
                            inputShape [h, w, c], classes, pool? 'avg'|'max', hidden? [..], width?),
                    "n": number of examples,
                    "reduction": "mean" | "sum"            (cross-entropy over examples; default mean),
                    "dtype": "float64" | "float32"         (compute precision; default float64),
                    "params"?: [{"name", "shape", "offset"}] (cusp's layout; checked against ours),
                    "hvp"?: true                           (needs v.f32),
                    "eigen"?: k                            (top-k of the full Hessian; small models only),
                    "time"?: {"repeats": 5, "threads": 2}  (for --time)
                  }
    theta.f32     float32[size]          cusp's flat parameters (layout below)
    x.f32         float32[n, h, w, c]    images, NHWC
    y.i32         int32[n]               labels in [0, classes)
    v.f32         float32[size]          direction for the HVP (when "hvp")

Output (oracle mode), in DIR:
    result.json   {"loss", "size", "layout": [{"name","shape","offset"}], "nameMismatches": [...],
                   "gradNorm", "hvpNorm"?, "eigenvalues"? (top-k, descending), "eigenResidual"?,
                   "hessianAsymmetry"?, "hvpVsHessian"? (||H v - hvp|| / ||hvp||, when both asked),
                   "torch": version, "dtype", "seconds"}
    grad.f64      float64[size]          gradient of the loss, in cusp's layout
    hvp.f64       float64[size]          H v (when "hvp")
    eigvecs.f64   float64[k, size]       unit eigenvectors of the top-k eigenvalues (when "eigen")
    spectrum.f64  float64[size]          every Hessian eigenvalue, descending (when "eigen")

Layout (cusp's, src/science/models.ts): parameters in layer order, each weight then its bias; conv
weight [kh, kw, cin, cout], dense weight [in, out], bias [out]. Here conv weights are permuted to
torch's [cout, cin, kh, kw] and activations run NCHW with torch's symmetric zero padding; conv
features are flattened in NCHW order (torch.flatten), the MLP's input image in NHWC order (permuted
before flattening), and dense layers compute x @ W + b with W [in, out]. Pools: window = stride = 2.
The layout is rebuilt here from the spec and checked against cusp's "params" (shapes and offsets
must agree; differing names are reported in "nameMismatches").
"""
import ctypes
import json
import math
import os
import statistics
import sys
import re
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------- architecture

def _conv(name, k, cin, cout, stride=1, pad=None):
    return {'op': 'conv', 'name': name, 'k': k, 'cin': cin, 'cout': cout, 'stride': stride,
            'pad': (k - 1) // 2 if pad is None else pad}


ACT = {'op': 'act'}


def _pool(kind):
    return {'op': 'pool', 'kind': kind, 'k': 2}


def _dense(name, fin, fout):
    return {'op': 'dense', 'name': name, 'in': fin, 'out': fout}


def _scaled(c, width):
    if not width > 0:
        raise ValueError(f'width must be > 0, got {width}')
    return max(1, int(math.floor(c * width + 0.5)))  # JavaScript Math.round


def _feature_shape(steps, h, w, c):
    for s in steps:
        if s['op'] == 'conv':
            h = (h + 2 * s['pad'] - s['k']) // s['stride'] + 1
            w = (w + 2 * s['pad'] - s['k']) // s['stride'] + 1
            c = s['cout']
        elif s['op'] == 'pool':
            h, w = h // s['k'], w // s['k']
        if h < 1 or w < 1:
            raise ValueError(f'input {h}x{w} too small for this network')
    return h, w, c


VGG16_D = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']


def program(spec):
    """The layer program for a spec: a list of conv / act / pool / flatten / dense steps.

    mlp:     flatten the NHWC image (h, w, c order), fc1..fc{k+1} with the activation between.
    cnn:     conv1 3x3 p1 c->16w, act, pool2, conv2 3x3 p1 ->32w, act, pool2, flatten, fc (pool: spec).
    alexnet: CIFAR AlexNet: conv1 11x11/4 p5 ->64w, act, max2, conv2 5x5 p2 ->192w, act, max2,
             conv3..5 3x3 p1 ->384w, 256w, 256w (act after each), max2, flatten, fc.
    vgg16:   configuration D, 3x3 p1 convs conv1..conv13 + act, max2 at each 'M', flatten,
             fc1 ->512w, act, fc2 ->512w, act, fc3 -> classes.
    Conv features are flattened in torch's NCHW order (torch.flatten), as cusp does (models.ts).
    """
    h, w, c = spec['inputShape']
    classes = spec['classes']
    arch = spec['arch']
    width = spec.get('width', 1)
    if arch == 'mlp':
        sizes = [h * w * c] + list(spec.get('hidden', [200, 200])) + [classes]
        steps = [{'op': 'flatten', 'order': 'hwc'}]
        for i in range(len(sizes) - 1):
            if i > 0:
                steps.append(ACT)
            steps.append(_dense(f'fc{i + 1}', sizes[i], sizes[i + 1]))
        return steps
    if arch == 'cnn':
        kind = spec.get('pool', 'avg')
        c1, c2 = _scaled(16, width), _scaled(32, width)
        body = [_conv('conv1', 3, c, c1), ACT, _pool(kind), _conv('conv2', 3, c1, c2), ACT, _pool(kind)]
        head = [('fc', classes)]
    elif arch == 'alexnet':
        c1, c2, c3, c4, c5 = (_scaled(v, width) for v in (64, 192, 384, 256, 256))
        body = [_conv('conv1', 11, c, c1, stride=4, pad=5), ACT, _pool('max'),
                _conv('conv2', 5, c1, c2), ACT, _pool('max'),
                _conv('conv3', 3, c2, c3), ACT, _conv('conv4', 3, c3, c4), ACT,
                _conv('conv5', 3, c4, c5), ACT, _pool('max')]
        head = [('fc', classes)]
    elif arch == 'vgg16':
        body, cin, i = [], c, 0
        for v in VGG16_D:
            if v == 'M':
                body.append(_pool('max'))
                continue
            i += 1
            body += [_conv(f'conv{i}', 3, cin, _scaled(v, width)), ACT]
            cin = _scaled(v, width)
        hid = _scaled(512, width)
        head = [('fc1', hid), ('fc2', hid), ('fc3', classes)]
    else:
        raise ValueError(f"unknown arch '{arch}'")
    fh, fw, fc = _feature_shape(body, h, w, c)
    steps = body + [{'op': 'flatten', 'order': 'chw'}]
    fan = fh * fw * fc
    for j, (name, out) in enumerate(head):
        if j > 0:
            steps.append(ACT)
        steps.append(_dense(name, fan, out))
        fan = out
    return steps


def layout(spec):
    """cusp's flat layout for a spec, derived independently: [{name, shape (tfjs), offset}]."""
    out, offset = [], 0
    for s in program(spec):
        if s['op'] == 'conv':
            shapes = [(f"{s['name']}.weight", [s['k'], s['k'], s['cin'], s['cout']]),
                      (f"{s['name']}.bias", [s['cout']])]
        elif s['op'] == 'dense':
            shapes = [(f"{s['name']}.weight", [s['in'], s['out']]), (f"{s['name']}.bias", [s['out']])]
        else:
            continue
        for name, shape in shapes:
            out.append({'name': name, 'shape': shape, 'offset': offset})
            offset += math.prod(shape)
    return out, offset


def make_forward(spec):
    """forward(theta [size], x [n, c, h, w]) -> logits [n, classes], all in torch's layouts."""
    steps = program(spec)
    lay, size = layout(spec)
    act = {'relu': torch.relu, 'tanh': torch.tanh}[spec['activation']]

    def tensor(theta, slot):
        return theta[slot['offset']:slot['offset'] + math.prod(slot['shape'])].view(*slot['shape'])

    def forward(theta, x):
        i = 0
        for s in steps:
            op = s['op']
            if op == 'conv':
                wt = tensor(theta, lay[i]).permute(3, 2, 0, 1)  # [kh, kw, cin, cout] -> [cout, cin, kh, kw]
                b = tensor(theta, lay[i + 1])
                i += 2
                x = F.conv2d(x, wt, b, stride=s['stride'], padding=s['pad'])
            elif op == 'act':
                x = act(x)
            elif op == 'pool':
                x = (F.max_pool2d if s['kind'] == 'max' else F.avg_pool2d)(x, s['k'], s['k'])
            elif op == 'flatten':
                if s['order'] == 'hwc':
                    x = x.permute(0, 2, 3, 1)  # NCHW -> NHWC: the MLP flattens the image in (h, w, c) order
                x = x.reshape(x.shape[0], -1)
            elif op == 'dense':
                wt = tensor(theta, lay[i])  # [in, out] (torch Linear's weight transposed)
                b = tensor(theta, lay[i + 1])
                i += 2
                x = x @ wt + b
        return x

    return forward, lay, size


# ---------------------------------------------------------------------------------------- computations

def loss_fn(forward, theta, x, y, reduction):
    return F.cross_entropy(forward(theta, x), y, reduction=reduction)


def gradient(forward, theta, x, y, reduction):
    t = theta.detach().requires_grad_(True)
    loss = loss_fn(forward, t, x, y, reduction)
    (g,) = torch.autograd.grad(loss, t)
    return loss.detach(), g


def hvp(forward, theta, v, x, y, reduction):
    t = theta.detach().requires_grad_(True)
    loss = loss_fn(forward, t, x, y, reduction)
    (g,) = torch.autograd.grad(loss, t, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, t)
    return hv


def full_hessian(forward, theta, x, y, reduction):
    """The exact Hessian [size, size]: one backward of each gradient component through the graph."""
    t = theta.detach().requires_grad_(True)
    loss = loss_fn(forward, t, x, y, reduction)
    (g,) = torch.autograd.grad(loss, t, create_graph=True)
    n = t.numel()
    H = torch.empty(n, n, dtype=t.dtype)
    for i in range(n):
        (row,) = torch.autograd.grad(g[i], t, retain_graph=True)
        H[i] = row
    return H


# ---------------------------------------------------------------------------------------- the peer's BLAS

def blas_info():
    """What does this process's matrix products: the BLAS libraries mapped into it, and their threads.

    kind: 'openblas' | 'mkl' | 'blis' | 'reference' (netlib libblas, ~20x slower) | 'unknown'.
    """
    paths = set()
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and re.search(r'lib(open)?blas|libmkl|libblis|libcblas', parts[-1]):
                paths.add(parts[-1])
    libs = sorted(paths)
    if any('openblas' in p for p in libs):
        kind = 'openblas'
    elif any('libmkl' in p for p in libs):
        kind = 'mkl'
    elif any('blis' in p for p in libs):
        kind = 'blis'
    elif any(re.search(r'/blas/libblas|libblas\.so', p) for p in libs):
        kind = 'reference'
    else:
        kind = 'unknown'
    info = {'kind': kind, 'libraries': libs}
    for p in libs:  # OpenBLAS answers for itself: version, core type, and the threads it will use
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_config.restype = ctypes.c_char_p
            info['openblas_config'] = lib.openblas_get_config().decode().strip()
            info['openblas_threads'] = int(lib.openblas_get_num_threads())
            break
        except (OSError, AttributeError):
            continue
    show = torch.__config__.show()
    m = re.search(r'BLAS_INFO=([^,\s]+)', show)
    info['torch_blas_info'] = m.group(1) if m else None
    info['torch_threads'] = torch.get_num_threads()
    info['torch_interop_threads'] = torch.get_num_interop_threads()
    par = torch.__config__.parallel_info()
    m = re.search(r'ATen parallel backend: (.+)', par)
    info['torch_parallel_backend'] = m.group(1).strip() if m else None
    return info


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


# ---------------------------------------------------------------------------------------- I/O

def read_inputs(d, timing):
    with open(os.path.join(d, 'header.json')) as f:
        header = json.load(f)
    vpath = os.path.join(d, 'v.f32')
    need_v = bool(header.get('hvp')) or (timing and os.path.exists(vpath))
    spec = header['spec']
    n = int(header['n'])
    h, w, c = spec['inputShape']
    theta = np.fromfile(os.path.join(d, 'theta.f32'), dtype='<f4')
    x = np.fromfile(os.path.join(d, 'x.f32'), dtype='<f4')
    y = np.fromfile(os.path.join(d, 'y.i32'), dtype='<i4')
    if x.size != n * h * w * c or y.size != n:
        raise ValueError(f'torch_hessian: x has {x.size} values, y {y.size}; expected {n * h * w * c} and {n}')
    v = np.fromfile(vpath, dtype='<f4') if need_v else None
    return header, theta, x.reshape(n, h, w, c), y, v


def check_layout(ours, size, theirs, theta):
    """Compare cusp's declared layout with ours; shapes/offsets must agree, names are reported."""
    if theta.size != size:
        raise ValueError(f'torch_hessian: theta has {theta.size} values; this spec has {size} parameters')
    mismatches = []
    if theirs is None:
        return mismatches
    if len(theirs) != len(ours):
        raise ValueError(f'torch_hessian: cusp lists {len(theirs)} tensors, we build {len(ours)}')
    for a, b in zip(ours, theirs):
        if list(a['shape']) != list(b['shape']) or a['offset'] != b['offset']:
            raise ValueError(f"torch_hessian: layout differs at {a['name']}: ours {a['shape']}@{a['offset']}, "
                             f"cusp's {b.get('name')} {b['shape']}@{b['offset']}")
        if a['name'] != b.get('name'):
            mismatches.append([a['name'], b.get('name')])
    return mismatches


def main(argv):
    if '--blas' in argv:
        print(json.dumps(blas_info()))
        return 0
    timing = '--time' in argv
    device = 'cpu'
    if '--device' in argv:
        i = argv.index('--device')
        if i + 1 >= len(argv):
            raise ValueError('--device needs a value (cpu or cuda)')
        device = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'--device {device}: this PyTorch sees no CUDA device')
    dirs = [a for a in argv if not a.startswith('--')]
    if len(dirs) > 1 and not timing:  # several oracle cases in one process: torch's import is paid once
        for d in dirs:
            main([d])
        return 0
    if len(dirs) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    d = dirs[0]
    started = time.perf_counter()
    header, theta_np, x_np, y_np, v_np = read_inputs(d, timing)
    spec = header['spec']
    reduction = header.get('reduction', 'mean')
    forward, lay, size = make_forward(spec)
    mismatches = check_layout(lay, size, header.get('params'), theta_np)
    if v_np is not None and v_np.size != size:
        raise ValueError(f'torch_hessian: v has {v_np.size} values; this spec has {size} parameters')

    if timing:
        opts = header.get('time', {})
        torch.set_num_threads(int(opts.get('threads', 2)))
        dtype = torch.float32
    else:
        dtype = torch.float64 if header.get('dtype', 'float64') == 'float64' else torch.float32
    theta = torch.from_numpy(theta_np.astype(np.float64)).to(dtype)
    x = torch.from_numpy(x_np.astype(np.float64)).to(dtype).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y = torch.from_numpy(y_np.astype(np.int64))
    v = torch.from_numpy(v_np.astype(np.float64)).to(dtype) if v_np is not None else None

    if timing:
        repeats = int(header.get('time', {}).get('repeats', 5))
        if v is None:
            v = torch.randn(size, dtype=dtype)
        cuda = device.startswith('cuda')
        if cuda:  # plain fp32 like the webgpu shaders: no TF32 tensor-core rounding
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        theta, x, y, v = (a.to(device) for a in (theta, x, y, v))
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        figures, cpu = {}, {}
        for key, fn in (('loss_ms', lambda: loss_fn(forward, theta, x, y, reduction)),
                        ('grad_ms', lambda: gradient(forward, theta, x, y, reduction)),
                        ('hvp_ms', lambda: hvp(forward, theta, v, x, y, reduction))):
            with torch.no_grad() if key == 'loss_ms' else torch.enable_grad():
                fn()  # warm-up
                sync()
                samples, used = [], []
                for _ in range(repeats):
                    c0, t0 = time.process_time(), time.perf_counter()
                    fn()
                    sync()
                    samples.append((time.perf_counter() - t0) * 1e3)
                    used.append((time.process_time() - c0) * 1e3)
            figures[key] = round(statistics.median(samples), 3)
            cpu[key.replace('_ms', '')] = round(statistics.median(used), 3)
        figures.update({'cpu_ms': cpu, 'threads': torch.get_num_threads(), 'n': int(header['n']), 'size': size,
                        'repeats': repeats, 'torch': torch.__version__, 'device': device,
                        **({'device_name': torch.cuda.get_device_name(device)} if cuda else {}),
                        'blas': blas_info(), 'peak_rss_mb': peak_rss_mb()})
        print(json.dumps(figures))
        return 0

    loss, g = gradient(forward, theta, x, y, reduction)
    g.double().numpy().astype('<f8').tofile(os.path.join(d, 'grad.f64'))
    result = {'loss': float(loss), 'size': size, 'layout': lay, 'nameMismatches': mismatches,
              'gradNorm': float(g.double().norm()), 'dtype': str(dtype).replace('torch.', ''),
              'torch': torch.__version__}
    if v is not None:
        hv = hvp(forward, theta, v, x, y, reduction)
        hv.double().numpy().astype('<f8').tofile(os.path.join(d, 'hvp.f64'))
        result['hvpNorm'] = float(hv.double().norm())
    k = int(header.get('eigen', 0) or 0)
    if k > 0:
        if size > 6000:
            raise ValueError(f'torch_hessian: refusing a full Hessian of {size} parameters (limit 6000)')
        H = full_hessian(forward, theta.double(), x.double(), y, reduction)
        result['hessianAsymmetry'] = float((H - H.T).abs().max())
        H = (H + H.T) / 2
        evals, evecs = torch.linalg.eigh(H)
        order = torch.argsort(evals, descending=True)
        evals, evecs = evals[order], evecs[:, order]
        evals.numpy().astype('<f8').tofile(os.path.join(d, 'spectrum.f64'))
        top = evecs[:, :k].T.contiguous()  # [k, size]
        top.numpy().astype('<f8').tofile(os.path.join(d, 'eigvecs.f64'))
        result['eigenvalues'] = [float(e) for e in evals[:k]]
        result['eigenResidual'] = float(max((H @ top[i] - evals[i] * top[i]).norm() for i in range(k)))
        if v is not None:  # the oracle's two routes to H v must agree (float64 rounding)
            hv64 = hv.double()
            result['hvpVsHessian'] = float((H @ v.double() - hv64).norm() / hv64.norm())
    result['seconds'] = round(time.perf_counter() - started, 3)
    with open(os.path.join(d, 'result.json.tmp'), 'w') as f:
        json.dump(result, f)
    os.replace(os.path.join(d, 'result.json.tmp'), os.path.join(d, 'result.json'))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, OSError, KeyError) as err:
        print(f'torch_hessian: {err}', file=sys.stderr)
        sys.exit(1)
