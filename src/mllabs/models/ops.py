"""How much arithmetic a network does: multiplications, additions and comparisons per layer.

Conventions (one forward pass at inference; a row of `summary` is one sample, the `ops`
command multiplies by the batch):

- Convolution: each output element is a dot product of C_in/groups · k_h · k_w inputs with as
  many weights, so that many multiplications and one fewer addition to sum the products, plus
  one addition for the bias when there is one. Total = per element × C_out · H_out · W_out × N.
- Linear: per output, in_features multiplications and in_features − 1 additions (+1 with bias).
- Average pooling (fixed or adaptive): window − 1 additions and 1 multiplication (by 1/window)
  per output. Max pooling: window − 1 comparisons per output. A fixed window counts k_h · k_w
  even where it hangs over the padding; adaptive windows are counted at their real sizes.
- Batch norm at inference: the running statistics and the affine fold into one scale and one
  shift, so 1 multiplication and 1 addition per element.
- ReLU: 1 comparison per element; ReLU6 (EfficientNet-Lite): 2, one at 0 and one at 6. Sigmoid, tanh, GELU, softmax and the like are not counted as
  + or × (they are table look-ups or series, not a fixed number of either); the rows show 0.
- Residual blocks (models/resnet.py, and EfficientNet's inverted residual blocks where they keep
  the identity path): the shortcut addition counts 1 addition per output element, in its own row
  just before the block's last ReLU (at the end of an inverted residual block, which has none).
- Dropout, flatten and identity do no arithmetic at inference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from mllabs.errors import UserError

CONVENTIONS = (
    "Counts are per sample at inference. A convolution output element costs C_in/groups·k_h·k_w "
    "multiplications and one addition fewer to sum them, plus one for the bias; a linear output "
    "the same with in_features. Batch norm: 1 × and 1 + per element (scale and shift folded). "
    "ReLU: 1 comparison per element (ReLU6: 2); max pooling: window − 1 comparisons per output; average "
    "pooling: window − 1 additions and 1 × per output. Residual blocks add 1 addition per "
    "output element for the shortcut. Sigmoid, tanh, GELU and softmax are not counted.")


@dataclass(frozen=True)
class Counts:
    multiplications: int = 0
    additions: int = 0
    comparisons: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.multiplications + other.multiplications,
                      self.additions + other.additions, self.comparisons + other.comparisons)

    def __mul__(self, times: int) -> Counts:
        return Counts(self.multiplications * times, self.additions * times,
                      self.comparisons * times)


# ---------------------------------------------------------------------------- per output element

def dot_product(length: int, bias: bool) -> Counts:
    """One output of a convolution or linear layer: `length` products summed, then the bias."""
    return Counts(length, length - 1 + int(bias))


def pool_window(window: int, kind: str) -> Counts:
    if kind == "max":
        return Counts(comparisons=window - 1)
    return Counts(multiplications=1, additions=window - 1)


# ---------------------------------------------------------------------------- layers of a model

def _adaptive_windows(size_in: int, size_out: int) -> int:
    """Sum of the window lengths PyTorch's adaptive pooling uses along one dimension."""
    return sum(math.ceil((i + 1) * size_in / size_out) - (i * size_in) // size_out
               for i in range(size_out))


def _spatial_dims(module: nn.Module) -> int:
    """1, 2 or 3: how many dimensions a pooling layer's window spans."""
    if isinstance(module, (nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveMaxPool1d, nn.AdaptiveAvgPool1d)):
        return 1
    if isinstance(module, (nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool3d)):
        return 3
    return 2


def layer_counts(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Counts:
    """The arithmetic of one call of a leaf layer (zero for layers that do none or that the
    conventions leave out)."""
    x = inputs[0] if inputs else None
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        length = module.in_channels // module.groups * math.prod(module.kernel_size)
        return dot_product(length, module.bias is not None) * output.numel()
    if isinstance(module, nn.Linear):
        return dot_product(module.in_features, module.bias is not None) * output.numel()
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        k = module.kernel_size
        window = math.prod(k) if isinstance(k, tuple) else k ** _spatial_dims(module)
        kind = "max" if isinstance(module, nn.modules.pooling._MaxPoolNd) else "avg"
        return pool_window(window, kind) * output.numel()
    if isinstance(module, (nn.modules.pooling._AdaptiveMaxPoolNd,
                           nn.modules.pooling._AdaptiveAvgPoolNd)):
        # windows differ in size, so sum them: Σ(window − 1) = Π(Σ lengths per dim) − outputs
        dims = _spatial_dims(module)
        planes = output.numel() // math.prod(output.shape[-dims:])
        window_sum = planes * math.prod(_adaptive_windows(i, o) for i, o in
                                        zip(x.shape[-dims:], output.shape[-dims:]))
        spare = window_sum - output.numel()
        if isinstance(module, nn.modules.pooling._AdaptiveMaxPoolNd):
            return Counts(comparisons=spare)
        return Counts(multiplications=output.numel(), additions=spare)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return Counts(output.numel(), output.numel())
    if isinstance(module, nn.ReLU):
        return Counts(comparisons=output.numel())
    if isinstance(module, nn.ReLU6):
        return Counts(comparisons=2 * output.numel())
    return Counts()


def _is_residual_block(module: nn.Module) -> bool:
    from mllabs.models.efficientnet import MBConv
    from mllabs.models.resnet import BasicBlock  # Bottleneck derives from it

    return ((isinstance(module, BasicBlock) and module.skip)
            or (isinstance(module, MBConv) and module.residual))


def trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """One dry forward pass of one sample; one row per leaf-layer call (a module called twice,
    like a block's shared ReLU, gets two rows and its parameters once) plus one row per
    residual addition. Rows hold the module itself under "module"."""
    rows: list[dict] = []
    seen: set[int] = set()
    hooks = []

    def record(mod, inputs, output, name):
        params = 0 if id(mod) in seen else sum(p.numel() for p in mod.parameters(recurse=False))
        seen.add(id(mod))
        rows.append({"layer": name or "(the model)", "type": type(mod).__name__, "module": mod,
                     "output": "×".join(map(str, output.shape[1:])), "parameters": params,
                     "counts": layer_counts(mod, inputs, output)})

    def residual(mod, _inputs, output, name):
        row = {"layer": f"{name}.add", "type": "shortcut addition", "module": mod,
               "output": "×".join(map(str, output.shape[1:])), "parameters": 0,
               "counts": Counts(additions=output.numel())}
        # the addition comes before the block's last ReLU, which has already recorded its row
        last = len(rows) - 1 if rows and rows[-1]["layer"] == f"{name}.relu" else len(rows)
        rows.insert(last, row)

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: record(m, i, o, name)))
        elif _is_residual_block(module):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: residual(m, i, o, name)))
    was_training = model.training
    model.eval()
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


# ---------------------------------------------------------------------------- one layer by hand

@dataclass
class Arithmetic:
    """One layer applied to a batch, with the working a student would write down."""

    layer: str
    input: tuple[int, ...]
    output: tuple[int, ...]
    per_output: Counts
    outputs: int
    total: Counts
    parameters: int
    working: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _n(value: int) -> str:
    return f"{value:,}"


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _check_positive(values: dict) -> None:
    for name, value in values.items():
        for v in value if isinstance(value, tuple) else (value,):
            if v <= 0:
                raise UserError(f"{name} must be positive, got {v}")


def output_size(size: int, kernel: int, stride: int, padding: int, axis: str) -> int:
    """⌊(size + 2·padding − kernel)/stride⌋ + 1, refusing windows that do not fit."""
    if padding < 0:
        raise UserError(f"padding must be 0 or more, got {padding}")
    if kernel > size + 2 * padding:
        raise UserError(f"the {kernel}-wide kernel does not fit the input's {axis} of {size} "
                        f"(+ 2×{padding} padding = {size + 2 * padding}); use a smaller kernel "
                        "or more padding")
    return (size + 2 * padding - kernel) // stride + 1


def _size_line(axis: str, size: int, kernel: int, stride: int, padding: int, out: int) -> str:
    inner = f"({size} + 2·{padding} − {kernel})/{stride}"
    if (size + 2 * padding - kernel) % stride:  # the last window would hang over: round down
        inner = f"⌊{inner}⌋"
    return f"  {axis}_out = ({axis} + 2p − k)/s + 1 = {inner} + 1 = {out}"


def _sliding(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int]) -> tuple[int, int, list[str]]:
    """Output height and width of a window sliding over an H×W input (convolution or pooling),
    and the lines of the working that derive them."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho = output_size(h, kh, sh, ph, "height")
    wo = output_size(w, kw, sw, pw, "width")
    return ho, wo, ["output size", _size_line("H", h, kh, sh, ph, ho),
                    _size_line("W", w, kw, sw, pw, wo)]


def _pair_text(a: int, b: int) -> str:
    """A stride or padding as given: one number when height and width agree."""
    return f"{a}" if a == b else f"{a},{b}"


def conv2d(input_shape: tuple[int, ...], out_channels: int, kernel: tuple[int, int],
           stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0), groups: int = 1,
           bias: bool = True) -> Arithmetic:
    """A 2-D convolution over an N×C×H×W batch, counted by the conventions above."""
    if len(input_shape) != 4:
        raise UserError(f"a convolution's input is N,C,H,W (4 numbers), got {len(input_shape)}: "
                        f"{','.join(map(str, input_shape))}")
    _check_positive({"input sizes": tuple(input_shape), "--out-channels": out_channels,
                     "--kernel": tuple(kernel), "--stride": tuple(stride), "--groups": groups})
    n, c, h, w = input_shape
    if c % groups or out_channels % groups:
        raise UserError(f"groups={groups} must divide both the input channels ({c}) and "
                        f"--out-channels ({out_channels})")
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo, size_lines = _sliding(h, w, kernel, stride, padding)
    length = c // groups * kh * kw
    per = dot_product(length, bias)
    outputs = n * out_channels * ho * wo
    params = out_channels * length + (out_channels if bias else 0)
    cin = f"{c}" if groups == 1 else f"({c}/{groups})"
    grouped = f", groups {groups}" if groups > 1 else ""
    bias_add = f", + 1 for the bias = {per.additions}" if bias else f" (no bias) = {per.additions}"
    bias_params = (" + C_out biases", f" + {out_channels}") if bias else ("", "")
    working = [
        f"convolution: input {_shape(input_shape)} (N×C×H×W), {out_channels} filters of "
        f"{c // groups}×{kh}×{kw}, stride {_pair_text(sh, sw)}, padding {_pair_text(ph, pw)}"
        f"{grouped}, bias {'on' if bias else 'off'}",
        *size_lines,
        f"  output = N×C_out×H_out×W_out = {_shape((n, out_channels, ho, wo))}",
        "per output element",
        f"  multiplications  C_in/groups·k_h·k_w = {cin}·{kh}·{kw} = {length}",
        f"  additions        {length} − 1 = {length - 1} to sum the products{bias_add}",
        f"total (× C_out·H_out·W_out·N = {out_channels}·{ho}·{wo}·{n} = {_n(outputs)} outputs)",
        f"  multiplications  {length} × {_n(outputs)} = {_n(per.multiplications * outputs)}",
        f"  additions        {per.additions} × {_n(outputs)} = {_n(per.additions * outputs)}",
        f"parameters: C_out·C_in/groups·k_h·k_w weights{bias_params[0]} = "
        f"{out_channels}·{length}{bias_params[1]} = {_n(params)}",
    ]
    return Arithmetic("conv2d", tuple(input_shape), (n, out_channels, ho, wo), per, outputs,
                      per * outputs, params, working)


def dense(input_shape: tuple[int, ...], out_features: int, bias: bool = True) -> Arithmetic:
    """A fully connected layer over an N×F batch."""
    if len(input_shape) != 2:
        raise UserError(f"a dense layer's input is N,F (2 numbers), got {len(input_shape)}: "
                        f"{','.join(map(str, input_shape))}")
    _check_positive({"input sizes": tuple(input_shape), "--out-features": out_features})
    n, f = input_shape
    per = dot_product(f, bias)
    outputs = n * out_features
    params = out_features * f + (out_features if bias else 0)
    bias_add = f", + 1 for the bias = {per.additions}" if bias else f" (no bias) = {per.additions}"
    bias_params = (" + out biases", f" + {out_features}") if bias else ("", "")
    working = [
        f"dense: input {_shape(input_shape)} (N×F), {out_features} outputs, "
        f"bias {'on' if bias else 'off'}",
        f"output = N×out = {_shape((n, out_features))}",
        "per output",
        f"  multiplications  in_features = {f}",
        f"  additions        {f} − 1 = {f - 1} to sum the products{bias_add}",
        f"total (× out·N = {out_features}·{n} = {_n(outputs)} outputs)",
        f"  multiplications  {f} × {_n(outputs)} = {_n(per.multiplications * outputs)}",
        f"  additions        {per.additions} × {_n(outputs)} = {_n(per.additions * outputs)}",
        f"parameters: out·in weights{bias_params[0]} = {out_features}·{f}{bias_params[1]} = "
        f"{_n(params)}",
    ]
    return Arithmetic("dense", tuple(input_shape), (n, out_features), per, outputs,
                      per * outputs, params, working)


def pool2d(input_shape: tuple[int, ...], kernel: tuple[int, int],
           stride: tuple[int, int] | None = None, padding: tuple[int, int] = (0, 0),
           kind: str = "max") -> Arithmetic:
    """Max or average pooling over an N×C×H×W batch (stride defaults to the kernel)."""
    if len(input_shape) != 4:
        raise UserError(f"a pooling layer's input is N,C,H,W (4 numbers), got "
                        f"{len(input_shape)}: {','.join(map(str, input_shape))}")
    if kind not in ("max", "avg"):
        raise UserError(f"pooling kind {kind!r} is not max or avg")
    stride = stride or kernel
    _check_positive({"input sizes": tuple(input_shape), "--kernel": tuple(kernel),
                     "--stride": tuple(stride)})
    for k, p in zip(kernel, padding):
        if 2 * p > k:
            raise UserError(f"padding {p} is more than half the {k}-wide window; a window "
                            "would see padding only")
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo, size_lines = _sliding(h, w, kernel, stride, padding)
    window = kh * kw
    per = pool_window(window, kind)
    outputs = n * c * ho * wo
    if kind == "max":  # keep the largest of the window: one comparison per extra element
        what = [f"  comparisons      window − 1 = {window} − 1 = {window - 1}"]
    else:  # sum the window, then scale by 1/window
        what = [f"  multiplications  1 (× 1/{window})",
                f"  additions        window − 1 = {window} − 1 = {window - 1}"]
    working = [
        f"{kind} pooling: input {_shape(input_shape)} (N×C×H×W), window {kh}×{kw}, "
        f"stride {_pair_text(sh, sw)}, padding {_pair_text(ph, pw)}",
        *size_lines,
        f"  output = N×C×H_out×W_out = {_shape((n, c, ho, wo))}",
        "per output element",
        *what,
        f"total (× C·H_out·W_out·N = {c}·{ho}·{wo}·{n} = {_n(outputs)} outputs)",
    ]
    total = per * outputs
    if kind == "max":
        working.append(f"  comparisons      {window - 1} × {_n(outputs)} = "
                       f"{_n(total.comparisons)}")
    else:
        working += [f"  multiplications  1 × {_n(outputs)} = {_n(total.multiplications)}",
                    f"  additions        {window - 1} × {_n(outputs)} = {_n(total.additions)}"]
    working.append("parameters: 0")
    return Arithmetic(f"{kind}pool2d", tuple(input_shape), (n, c, ho, wo), per, outputs, total,
                      0, working)
