"""The train step: built-in models, one submodel or a vectorized pack at a time.

Torch is imported by the modules that train (``jobs``, ``fit``, ``vectorized``, ``models``), not
here: params validation reads ``ame.training.recipe`` at workflow start-up without torch.
"""
