"""A real Lightning Trainer (CPU, 2 devices, DDP) over llamass datasets; each rank records the clips of every batch.

Usage: python tests/launch_lightning.py DATA_ROOT OUT_DIR TAG MAX_EPOCHS [CHECKPOINT] [--checkpoints]

The DataModule builds the training `AMASS` in `__init__` (before the process group exists) and the validation
`AMASS` in `setup`. Each rank writes OUT_DIR/TAG_rank{r}.json: the training clips of each batch, by epoch, and
the validation clips. With --checkpoints the run saves a checkpoint at the end of epoch 0 (end.ckpt) and one
in the middle of epoch 1 (mid.ckpt); with CHECKPOINT it resumes from that file.
"""
import json
import sys
from pathlib import Path

import lightning as L
import torch

from llamass.core import AMASS, IterableLoader
from llamass.dataset import clip_ids

MID_STEP = 3   # the mid-epoch checkpoint is taken after this many batches of epoch 1


class AMASSData(L.LightningDataModule):
    "Training clips built in __init__ (before the process group exists), validation clips in setup: both shard right."
    def __init__(self, root, clip_length=32, batch_size=64, num_workers=2, **dataset_args):
        super().__init__()
        self.root, self.clip_length, self.batch_size, self.num_workers, self.dataset_args = root, clip_length, batch_size, num_workers, dataset_args
        self.train = AMASS(root, clip_length, shuffle=True, **dataset_args)
    def setup(self, stage):
        self.val = AMASS(self.root, self.clip_length, **self.dataset_args)
    def train_dataloader(self):
        return IterableLoader(self.train, batch_size=self.batch_size, num_workers=self.num_workers)
    def val_dataloader(self):
        return IterableLoader(self.val, batch_size=self.batch_size)


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.seen, self.val_seen = {}, []
    def training_step(self, batch, index):
        self.seen.setdefault(self.current_epoch, []).append(clip_ids(batch))
        return self.layer(batch["trans"][:, 0].float()).mean()
    def validation_step(self, batch, index):
        self.val_seen.append(clip_ids(batch))
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.0)


class MidEpochCheckpoint(L.Callback):
    "Save end.ckpt after epoch 0, and mid.ckpt after MID_STEP batches of epoch 1."
    def __init__(self, out): self.out = out
    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 0: trainer.save_checkpoint(self.out / "end.ckpt")
    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        if trainer.current_epoch == 1 and index == MID_STEP - 1: trainer.save_checkpoint(self.out / "mid.ckpt")


if __name__ == "__main__":
    root, out, tag, max_epochs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    resume = next((a for a in sys.argv[5:] if not a.startswith("--")), None)
    module = Recorder()
    data = AMASSData(root, clip_length=2, batch_size=3, num_workers=1, keep=1.0, data_keys=("trans",), progress=False)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=max_epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[MidEpochCheckpoint(out)] if "--checkpoints" in sys.argv else [])
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    report = {"rank": trainer.global_rank, "train_rank": data.train.rank, "world_size": data.train.world_size,
              "len": len(data.train_dataloader()), "epochs": {str(e): b for e, b in module.seen.items()}, "val": module.val_seen}
    (out / f"{tag}_rank{trainer.global_rank}.json").write_text(json.dumps(report))
