"""``ThroughputHook``: training images/s in the log (the cost users compare optimizers by)."""
import json
import os.path as osp
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _batch_size(data_batch) -> int:
    if isinstance(data_batch, dict):
        if data_batch.get('data_samples') is not None:
            return len(data_batch['data_samples'])
        inputs = data_batch.get('inputs')
        return len(inputs) if inputs is not None else 0
    return len(data_batch)


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Writes ``train/images_per_s`` per iteration (train step only, data loading excluded);
    when training ends, logs the rate over the whole run and writes it to
    ``<log_dir>/throughput.json`` (``images``, ``seconds``, ``images_per_s``) for scripts."""

    priority = 'LOW'

    def before_train(self, runner) -> None:
        self.images, self.seconds = 0, 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        seconds = time.perf_counter() - self._start
        images = _batch_size(data_batch)
        self.images += images
        self.seconds += seconds
        runner.message_hub.update_scalar('train/images_per_s', images / max(seconds, 1e-9))

    def after_train(self, runner) -> None:
        if self.seconds > 0:
            rate = self.images / self.seconds
            runner.message_hub.update_info('train_images_per_s', rate)
            runner.logger.info(f'training throughput: {rate:.1f} images/s '
                               f'({self.images} images in {self.seconds:.1f} s of train steps)')
            if runner.rank == 0:
                with open(osp.join(runner.log_dir, 'throughput.json'), 'w') as f:
                    json.dump(dict(images=self.images, seconds=self.seconds, images_per_s=rate), f)
