"""One helper for every norm test: torch.autograd.gradcheck of a layer w.r.t. its input and all its
parameters (λ, γ, β), through torch.func.functional_call so each parameter is a checked input."""
import torch


def layer_gradcheck(layer: torch.nn.Module, x: torch.Tensor, second_order: bool = False) -> bool:
    names, params = zip(*layer.named_parameters()) if list(layer.parameters()) else ((), ())

    def f(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))

    inputs = (x.detach().requires_grad_(), *params)
    if second_order:
        return torch.autograd.gradgradcheck(f, inputs, fast_mode=True)
    return torch.autograd.gradcheck(f, inputs)
