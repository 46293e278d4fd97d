"""``ThroughputHook``: training images/s in the log (the cost users compare optimizers by)."""
import json
import os.path as osp
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from common.options import checked_options


def _batch_size(data_batch) -> int:
    if isinstance(data_batch, dict):
        if data_batch.get('data_samples') is not None:
            return len(data_batch['data_samples'])
        inputs = data_batch.get('inputs')
        return len(inputs) if inputs is not None else 0
    return len(data_batch)


@HOOKS.register_module()
@checked_options
class ThroughputHook(Hook):
    """Writes ``train/images_per_s`` per iteration (train step only, data loading excluded);
    when training ends, logs the rate over the whole run and writes it to
    ``<log_dir>/throughput.json`` for scripts: ``images``, ``seconds``, ``images_per_s``
    and ``sample_passes``, the forward/backward passes run, counted per sample (plain
    optimizers: one per image; SAM-family: what ``SAMOptimWrapper.sample_passes`` counted),
    the cost measure that does not depend on the machine's load."""

    priority = 'LOW'

    def before_train(self, runner) -> None:
        self.images, self.seconds, self.sample_passes = 0, 0.0, 0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._passes_before = getattr(runner.optim_wrapper, 'sample_passes', None)
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        seconds = time.perf_counter() - self._start
        images = _batch_size(data_batch)
        self.images += images
        self.seconds += seconds
        if self._passes_before is None:
            self.sample_passes += images
        else:
            self.sample_passes += runner.optim_wrapper.sample_passes - self._passes_before
        runner.message_hub.update_scalar('train/images_per_s', images / max(seconds, 1e-9))

    def after_train(self, runner) -> None:
        if self.seconds > 0:
            rate = self.images / self.seconds
            runner.message_hub.update_info('train_images_per_s', rate)
            runner.logger.info(f'training throughput: {rate:.1f} images/s '
                               f'({self.images} images in {self.seconds:.1f} s of train steps, '
                               f'{self.sample_passes / self.images:.2f} sample-passes per image)')
            if runner.rank == 0:
                with open(osp.join(runner.log_dir, 'throughput.json'), 'w') as f:
                    json.dump(dict(images=self.images, seconds=self.seconds, images_per_s=rate,
                                   sample_passes=self.sample_passes), f)
