"""The buffer of past fakes that CycleGAN's discriminators see (Chapter 5): :class:`ImageBuffer`."""
from __future__ import annotations

import torch
from torch import Tensor


class ImageBuffer:
    """A pool of up to ``capacity`` past generated images (Shrivastava et al., 2017; used by CycleGAN).

    :meth:`query` takes a batch of new fakes and returns a batch of the same shape for the
    discriminator: while the pool is filling, the new images themselves (and they are stored);
    afterwards each image is, with probability ``p``, swapped for a random stored one (which is
    returned, the new image taking its place), else returned as is.  The images of one batch
    draw different slots (when the batch is not larger than the pool), so a stored image is
    returned at most once per call.  The discriminator thus
    also sees what the generator produced a while ago, which damps the two networks chasing
    each other.  ``capacity=0`` turns it off.  Random draws use ``generator`` (on the images'
    device).  The pool holds detached copies.
    """

    def __init__(self, capacity: int = 50, *, p: float = 0.5, generator: torch.Generator | None = None):
        if capacity < 0 or not 0 <= p <= 1:
            raise ValueError(f"need capacity >= 0 and 0 <= p <= 1, got {capacity}, {p}")
        self.capacity, self.p, self.generator = capacity, p, generator
        self.images: Tensor | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        images = images.detach()
        if self.capacity == 0:
            return images
        if self.images is None:
            self.images = torch.empty(self.capacity, *images.shape[1:], dtype=images.dtype, device=images.device)
        out = images.clone()
        n_fill = min(self.capacity - self.count, images.shape[0])
        if n_fill:                                                   # filling: store and return the new images
            self.images[self.count:self.count + n_fill] = images[:n_fill]
            self.count += n_fill
        rest = images[n_fill:]
        if rest.shape[0]:
            g = self.generator
            dev = rest.device if g is None else g.device
            r = rest.shape[0]
            swap = (torch.rand(r, device=dev, generator=g) < self.p).to(rest.device)
            if r <= self.capacity:                                   # distinct slots: no stored image used twice
                slot = torch.randperm(self.capacity, device=dev, generator=g)[:r].to(rest.device)
            else:                                                    # more new images than slots: repeats possible
                slot = torch.randint(self.capacity, (r,), device=dev, generator=g).to(rest.device)
            old = self.images[slot]                                  # (R, C, H, W) past fakes
            out[n_fill:] = torch.where(swap[:, None, None, None], old, rest)
            keep = torch.where(swap[:, None, None, None], rest, old)  # swapped slots take the new image
            self.images[slot] = keep.to(self.images.dtype)
        return out
