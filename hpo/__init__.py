"""hpo: hyperparameter optimisation for deep learning (Optuna studies, PyTorch, MLflow)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
