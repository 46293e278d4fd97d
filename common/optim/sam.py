"""SAM (Foret et al., ICLR 2021, arXiv 2010.01412) and ASAM (Kwon et al., ICML 2021).

Every iteration: g = grad L_B(w); e = rho g / ||g|| (ASAM: rho T^2 g / ||T g||,
T = |w|); g_s = grad L_B(w + e) with running statistics frozen; restore w; the base
optimizer steps with g_s. One parameter-sized buffer (the backup of w).
"""
from .base import SAMBase


class SAM(SAMBase):
    """Sharpness-Aware Minimization; ``adaptive=True`` gives ASAM (use rho ~ 10x larger).

    Example::

        optimizer = SAM(model.parameters(), 'SGD', rho=0.05, lr=0.1, momentum=0.9)
        for x, y in loader:
            loss = optimizer.step(lambda: F.cross_entropy(model(x), y), model=model)
    """
