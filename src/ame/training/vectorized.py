"""Vectorized training of small submodels: many linear or mlp models trained at once.

The rule (``ame.training.recipe.vectorize_problem``): vectorized training covers the ``linear`` and
``mlp`` models trained full batch (``batch_size: null``) in fp32 without augmentation. Params
validation refuses ``training.vectorize: true`` for anything else, and so does
:func:`fit_submodels`: there is no silent fallback to the one-at-a-time loop.

How it matches one-at-a-time training (:func:`ame.training.fit.fit_submodel`):

* every model is initialised exactly as ``fit_submodel`` would (the global generator seeded with
  the model's seed, then the module built), and its parameters are stacked along a leading model
  dimension;
* the rows of each model's subset are gathered into a padded batch of shape
  (n_models, n_features, n_max) whose padding rows weigh 0, so each model's loss is the mean
  cross-entropy over its own rows, and the summed loss gives each model exactly its own gradient;
* one optimizer (the same Adam or SGD, with the same weight decay, momentum and learning-rate
  schedule) updates the stacked tensors; these optimizers act elementwise, so every model takes
  exactly ``steps`` steps of its own. Only floating-point summation orders differ.

Models are grouped by subset size (a new group starts below ``GROUP_FILL`` of the group's
largest subset) so that padding stays small, and groups are capped by ``MEMORY_BUDGET``.
"""

from __future__ import annotations

import torch
from torch.func import stack_module_state

from ame.errors import UserError
from ame.training.fit import as_float, learning_rate, make_optimizer
from ame.training.models import build_model
from ame.training.recipe import vectorize_problem

CHUNK = 100  # subsets a training job hands over at once (their files are written after each)
GROUP_FILL = 0.9
MEMORY_BUDGET = 1 << 30  # bytes of gathered inputs, activations and optimizer state per group
LAYOUT = {"linear": ("1.weight", "1.bias"), "mlp": ("1.weight", "1.bias", "3.weight", "3.bias")}


def _forward(model: str, p: dict, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of shape (n_models, n_classes, n_rows) from inputs (n_models, n_features, n_rows)."""
    if model == "linear":
        return torch.baddbmm(p["1.bias"].unsqueeze(-1), p["1.weight"], inputs)
    hidden = torch.relu(torch.baddbmm(p["1.bias"].unsqueeze(-1), p["1.weight"], inputs))
    return torch.baddbmm(p["3.bias"].unsqueeze(-1), p["3.weight"], hidden)


def _groups(sizes: list[int], per_row_bytes: int, per_model_bytes: int) -> list[list[int]]:
    """Indices of non-empty subsets, largest first, cut into groups of similar size."""
    groups: list[list[int]] = []
    for k in sorted((k for k, n in enumerate(sizes) if n > 0), key=lambda k: -sizes[k]):
        if groups:
            group = groups[-1]
            cap = MEMORY_BUDGET // (sizes[group[0]] * per_row_bytes + per_model_bytes)
            if sizes[k] >= GROUP_FILL * sizes[group[0]] and len(group) < max(cap, 1):
                group.append(k)
                continue
        groups.append([k])
    return groups


def _fit_group(modules, rows_list, X: torch.Tensor, y: torch.Tensor, settings: dict) -> None:
    """Train ``modules`` (each on its rows) together, then write the results back into them."""
    params, _ = stack_module_state(modules)
    if tuple(params) != LAYOUT[settings["model"]]:
        raise RuntimeError(
            f"vectorized {settings['model']}: parameters {tuple(params)} do not match the layout "
            f"{LAYOUT[settings['model']]} this module implements (ame.training.models changed?)"
        )
    sizes = torch.tensor([len(r) for r in rows_list], device=X.device)
    n_max = int(sizes.max())
    index = torch.stack([torch.cat([r, r[:1].expand(n_max - len(r))]) for r in rows_list])
    valid = torch.arange(n_max, device=X.device) < sizes[:, None]
    weight = valid.to(X.dtype) / sizes[:, None].to(X.dtype)
    inputs = X[index].transpose(1, 2)  # (n_models, n_features, n_max), a view
    targets = y[index].unsqueeze(1)  # (n_models, 1, n_max)
    optimizer = make_optimizer(list(params.values()), settings)
    smoothing = settings["label_smoothing"]
    for step in range(settings["steps"]):
        if settings["lr_schedule"] is not None:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
        optimizer.zero_grad(set_to_none=True)
        log_p = torch.log_softmax(_forward(settings["model"], params, inputs), dim=1)
        loss = -log_p.gather(1, targets).squeeze(1)
        if smoothing:
            loss = (1.0 - smoothing) * loss - smoothing * log_p.mean(dim=1)
        (loss * weight).sum().backward()
        optimizer.step()
    with torch.no_grad():
        for k, module in enumerate(modules):
            for name, parameter in module.named_parameters():
                parameter.copy_(params[name][k])


def fit_submodels(
    X: torch.Tensor,
    y: torch.Tensor,
    rows_list: list[torch.Tensor],
    n_classes: int,
    settings: dict,
    seeds: list[int],
) -> list[torch.nn.Module]:
    """Train one submodel per subset, all at once; the same models as ``fit_submodel`` gives.

    Parameters
    ----------
    X : Tensor of shape (n_points, *input_shape), on the training device
    y : Tensor of int64, shape (n_points,)
    rows_list : list of int64 Tensors, one subset's rows each
    seeds : list of int, one per subset

    Returns
    -------
    list of torch.nn.Module, trained, in the order of ``rows_list``.
    """
    problem = vectorize_problem(settings)
    if problem:
        raise UserError(f"training.vectorize: {problem}")
    if len(rows_list) != len(seeds):
        raise ValueError(f"fit_submodels: {len(rows_list)} subsets but {len(seeds)} seeds")
    modules = []
    for seed in seeds:
        torch.manual_seed(seed)
        module = build_model(settings["model"], tuple(X.shape[1:]), n_classes, settings["hidden"])
        modules.append(module.to(X.device))
    flat = as_float(X).reshape(len(X), -1)
    width = (settings["hidden"] if settings["model"] == "mlp" else 0) + n_classes
    n_parameters = sum(p.numel() for p in modules[0].parameters()) if modules else 0
    per_row = flat.element_size() * (flat.shape[1] + 4 * width + 2)
    per_model = flat.element_size() * 5 * n_parameters
    for group in _groups([len(r) for r in rows_list], per_row, per_model):
        _fit_group([modules[k] for k in group], [rows_list[k] for k in group], flat, y, settings)
    return modules
