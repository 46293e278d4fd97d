"""``ThroughputHook``: training images/s in the log (the cost users compare optimizers by)."""
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
    """Writes ``train/images_per_s`` per iteration (train step only, data loading excluded)
    and logs the mean over the whole run when training ends."""

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
