"""Example PyTorch Lightning script: an MLP on scikit-learn's bundled digits, trained on CPU in a
few seconds, configured by LightningCLI (``python scripts/train_lightning.py fit --model.lr=0.01
--trainer.max_epochs=10``).

It knows nothing of Sweeps: it prints no metric. It logs ``val_loss`` and ``val_acc`` with
``self.log`` and keeps its best checkpoint (``ModelCheckpoint(monitor="val_loss")``); swept by
Sweeps (``sweep_lightning.yaml``), its Trainer is traced, which reports ``val_loss`` after each
validation epoch, stops the Trainer when the pruner says so, and records the best checkpoint.
Needs ``pip install -r requirements-lightning.txt``.
"""

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsData(LightningDataModule):
    """scikit-learn's 8x8 digits (1,797 images, shipped inside the package), 70 % train / 30 % validation."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        X, y = load_digits(return_X_y=True)
        X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)
        self.train_set = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train))
        self.val_set = TensorDataset(torch.tensor(X_val, dtype=torch.float32), torch.tensor(y_val))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=len(self.val_set))


class DigitsMLP(LightningModule):
    """Two hidden layers, trained by SGD with momentum."""

    def __init__(self, lr: float = 0.05, momentum: float = 0.9, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)

    def configure_callbacks(self) -> list:
        return [ModelCheckpoint(monitor="val_loss", mode="min")]


def main() -> None:
    torch.set_num_threads(1)  # trials run side by side; one thread each is faster for a model this small
    LightningCLI(
        DigitsMLP,
        DigitsData,
        seed_everything_default=0,
        trainer_defaults={
            "accelerator": "cpu",
            "max_epochs": 10,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
        },
    )


if __name__ == "__main__":
    main()
