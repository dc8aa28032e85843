"""munet: evolve a pretrained ViT into one multitask system (muNet, Gesmundo & Dean 2022)."""

__version__ = "0.1.0"
