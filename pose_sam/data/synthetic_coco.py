"""A small synthetic data set in COCO person-keypoints format (drawn articulated figures).

The annotation files follow the COCO keypoint format
(https://cocodataset.org/#format-data, "Object Keypoint Detection"): one ``person``
category with COCO's 17 keypoint names and skeleton; per annotation ``keypoints``
``[x, y, v] * 17`` (``v``: 0 not labelled, 1 labelled but occluded, 2 visible),
``num_keypoints``, ``bbox`` ``[x, y, w, h]`` of the visible region, ``area`` (pixel
count of the visible region), ``segmentation`` (polygons of that region) and
``iscrowd=0``. Keypoint coordinates use OpenCV's convention (pixel centres at integer
coordinates), the one MMPose's affine transforms use.

Each figure has a head with eyes, nose and ears, a torso and two-segment limbs with
random joint angles, scale, position and tilt. The person's left side is drawn in red
shades and the right side in blue shades, so left and right can be told apart in the
picture (a mirrored image is therefore *not* a valid sample: train without flipping).
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
from typing import Callable, Optional, Tuple

import cv2
import numpy as np

COCO_KEYPOINT_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
    'left_knee', 'right_knee', 'left_ankle', 'right_ankle')
#: COCO's skeleton (1-based keypoint indices), as in person_keypoints_*.json.
COCO_SKELETON = (
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7])
COCO_PERSON_CATEGORY = dict(supercategory='person', id=1, name='person',
                            keypoints=list(COCO_KEYPOINT_NAMES), skeleton=[list(s) for s in COCO_SKELETON])

_SHIFT = 4                # fixed-point bits for OpenCV drawing (sub-pixel geometry)
_SCALE = 1 << _SHIFT
_OCCLUDER = 255           # owner-map value of occluding objects
_SPLITS = {'train': 0, 'val': 1}


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _sample_pose(rng: np.random.Generator) -> np.ndarray:
    """17 keypoints of one figure in body units (height about 1), x right, y down."""
    rad = np.deg2rad
    turn = rng.uniform(0.55, 1.0)                 # body turned away from the camera a bit
    kp = np.zeros((17, 2))
    neck = np.array([0.0, -0.30])
    head = neck + np.array([rng.uniform(-0.02, 0.02), -0.11])
    yaw = rng.uniform(-1, 1) * 0.02               # head turned left/right
    kp[0] = head + [yaw, 0.012]                                   # nose
    kp[1], kp[2] = head + [0.03 + yaw, -0.012], head + [-0.03 + yaw, -0.012]      # eyes
    kp[3], kp[4] = head + [0.07 + yaw / 2, 0.0], head + [-0.07 + yaw / 2, 0.0]      # ears
    # The person faces the camera: their left side is on the image's right (+x).
    kp[5], kp[6] = neck + [0.12 * turn, 0.02], neck + [-0.12 * turn, 0.02]        # shoulders
    kp[11], kp[12] = np.array([0.085 * turn, 0.0]), np.array([-0.085 * turn, 0.0])  # hips
    down = np.array([0.0, 1.0])
    for side, (s, e, w) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):   # arms
        d1 = _rot(down, -side * rad(rng.uniform(-35, 170)))
        d2 = _rot(d1, -side * rad(rng.uniform(-20, 150)))
        kp[e] = kp[s] + 0.16 * d1
        kp[w] = kp[e] + 0.15 * d2
    for side, (h, k, a) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):  # legs
        d1 = _rot(down, -side * rad(rng.uniform(-20, 60)))
        d2 = _rot(d1, side * rad(rng.uniform(-10, 110)) * rng.choice([-1, 1], p=[0.2, 0.8]))
        kp[k] = kp[h] + 0.24 * d1
        kp[a] = kp[k] + 0.23 * d2
    tilt = rad(rng.normal(0, 12))
    c, s = math.cos(tilt), math.sin(tilt)
    return kp @ np.array([[c, s], [-s, c]])


def _fixed(p) -> Tuple[int, int]:
    return int(round(p[0] * _SCALE)), int(round(p[1] * _SCALE))


def _colour(rng: np.random.Generator, family: str) -> Tuple[int, int, int]:
    """BGR colour: 'left' red shades, 'right' blue shades, 'any' anything."""
    lo, hi = rng.uniform(0, 90, 2), rng.uniform(150, 256)
    if family == 'left':
        b, g, r = lo[0], lo[1], hi
    elif family == 'right':
        b, g, r = hi, lo[1], lo[0]
    else:
        b, g, r = rng.uniform(30, 230, 3)
    return int(b), int(g), int(r)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    grid = rng.uniform(40, 215, (rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.float32)
    img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 8)):          # clutter: lines and rings in any colour
        col = _colour(rng, 'any')
        p, q = rng.uniform(0, 1, 2) * (w, h), rng.uniform(0, 1, 2) * (w, h)
        if rng.random() < 0.6:
            cv2.line(img, _fixed(p), _fixed(q), col, int(rng.integers(1, 4)), cv2.LINE_AA, _SHIFT)
        else:
            cv2.circle(img, _fixed(p), int(rng.uniform(3, 0.15 * h) * _SCALE), col,
                       int(rng.integers(1, 3)), cv2.LINE_AA, _SHIFT)
    return img


def _draw_person(img, owner, label, kp, height, rng) -> None:
    """Draw one figure into ``img`` and its pixels (value ``label``) into ``owner``."""
    thick = max(2, int(round(height * rng.uniform(0.075, 0.095))))   # arms; legs are thicker
    leg = max(3, int(round(thick * 1.2)))
    torso_c, skin = _colour(rng, 'any'), _colour(rng, 'any')
    left_c, right_c = _colour(rng, 'left'), _colour(rng, 'right')
    head_c = (kp[1] + kp[2]) / 2 + [0, 0.012 * height]
    head_r = 0.08 * height

    def seg(a, b, col, t):
        for canvas, c, aa in ((img, col, cv2.LINE_AA), (owner, label, cv2.LINE_8)):
            cv2.line(canvas, _fixed(kp[a]), _fixed(kp[b]), c, t, aa, _SHIFT)

    def poly(points, col):
        pts = np.array([_fixed(p) for p in points], np.int32)
        cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA, _SHIFT)
        cv2.fillConvexPoly(owner, pts, label, cv2.LINE_8, _SHIFT)

    def disc(p, r, col):
        cv2.circle(img, _fixed(p), int(r * _SCALE), col, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(owner, _fixed(p), int(r * _SCALE), label, -1, cv2.LINE_8, _SHIFT)

    shade = lambda c, f: tuple(int(v * f) for v in c)  # noqa: E731
    seg(11, 13, shade(left_c, 0.8), leg)
    seg(13, 15, shade(left_c, 0.8), leg)
    seg(12, 14, shade(right_c, 0.8), leg)
    seg(14, 16, shade(right_c, 0.8), leg)
    neck = (kp[5] + kp[6]) / 2
    poly([kp[5], kp[6], kp[12], kp[11]], torso_c)
    seg(5, 6, torso_c, thick)
    seg(11, 12, torso_c, thick)
    cv2.line(img, _fixed(neck), _fixed(head_c), skin, thick, cv2.LINE_AA, _SHIFT)
    cv2.line(owner, _fixed(neck), _fixed(head_c), label, thick, cv2.LINE_8, _SHIFT)
    disc(head_c, head_r, skin)
    for k, col in ((3, left_c), (4, right_c)):                  # ears
        disc(kp[k], 0.025 * height, col)
    for k, col in ((1, left_c), (2, right_c)):                  # eyes
        disc(kp[k], max(0.9, 0.014 * height), col)
    disc(kp[0], max(0.8, 0.01 * height), (20, 20, 20))          # nose
    for a, b, col in ((5, 7, left_c), (7, 9, left_c), (6, 8, right_c), (8, 10, right_c)):
        seg(a, b, col, thick)
    for k, col in ((9, left_c), (10, right_c)):                 # hands
        disc(kp[k], 0.6 * thick, shade(col, 0.7))


def _render_image(rng: np.random.Generator, w: int, h: int, max_people: int):
    """One image and the list of (keypoints, owner label) of its figures."""
    img = _background(rng, w, h)
    owner = np.zeros((h, w), np.uint8)
    people = []
    for label in range(1, int(rng.integers(1, max_people + 1)) + 1):
        height = rng.uniform(0.45, 0.85) * h
        kp = _sample_pose(rng) * height
        lo, hi = kp.min(0), kp.max(0)
        size = np.array([w, h], float)
        offset = rng.uniform(-lo, np.maximum(size - hi, -lo))        # inside the frame
        if rng.random() < 0.2:                                        # partly out of frame
            axis, end = rng.integers(2), rng.integers(2)
            centre = end * size[axis] + rng.uniform(-0.25, 0.25) * (hi - lo)[axis]
            offset[axis] = centre - (lo + hi)[axis] / 2
        kp = kp + offset
        _draw_person(img, owner, label, kp, height, rng)
        people.append((kp, label))
    for _ in range(rng.binomial(2, 0.25)):                         # occluders
        col = _colour(rng, 'any')
        centre = rng.uniform(0, 1, 2) * (w, h)
        axes = rng.uniform(0.05, 0.18, 2) * h
        angle = rng.uniform(0, 180)
        for canvas, c in ((img, col), (owner, _OCCLUDER)):
            cv2.ellipse(canvas, _fixed(centre), (int(axes[0] * _SCALE), int(axes[1] * _SCALE)), angle,
                        0, 360, c, -1, cv2.LINE_AA if canvas is img else cv2.LINE_8, _SHIFT)
    noise = rng.normal(0, 4, img.shape)
    img = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    return img, owner, people


def _annotate(kp: np.ndarray, label: int, owner: np.ndarray) -> Optional[dict]:
    """COCO annotation fields of one figure, or None when nothing of it is visible."""
    h, w = owner.shape
    mask = (owner == label).astype(np.uint8)
    area = int(mask.sum())
    if area == 0:
        return None
    keypoints = []
    for x, y in kp:
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            keypoints += [0, 0, 0]
            continue
        v = 2 if owner[int(round(y)), int(round(x))] == label else 1
        keypoints += [round(float(x), 2), round(float(y), 2), v]
    ys, xs = np.nonzero(mask)
    x0, y0 = max(xs.min() - 0.5, 0.0), max(ys.min() - 0.5, 0.0)
    x1, y1 = min(xs.max() + 0.5, float(w)), min(ys.max() + 0.5, float(h))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segmentation = []
    for c in contours:
        c = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2)
        if len(c) >= 3:
            segmentation.append([float(v) for v in c.reshape(-1)])
    return dict(segmentation=segmentation, num_keypoints=sum(v > 0 for v in keypoints[2::3]),
                area=float(area), iscrowd=0, keypoints=keypoints,
                bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                category_id=1)


def generate_split(out_dir: str, split: str, num_images: int, image_size: Tuple[int, int] = (256, 192),
                   max_people: int = 3, seed: int = 0, ext: str = 'jpg',
                   progress: Optional[Callable[[int], None]] = None) -> dict:
    """Write ``out_dir/<split>/*.<ext>`` and return the split's COCO dictionary.

    Image ``i`` is drawn from a generator seeded with ``(seed, split, i)``, so a split
    does not depend on the other split's size. Image ids are ``split_index * 10**7 + i + 1``
    and annotation ids ``image_id * 100 + person``, unique over both splits.
    """
    w, h = image_size
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, _SPLITS[split], i])
        img, owner, people = _render_image(rng, w, h, max_people)
        image_id = _SPLITS[split] * 10 ** 7 + i + 1
        file_name = f'{image_id:012d}.{ext}'
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == 'jpg' else []
        cv2.imwrite(osp.join(out_dir, split, file_name), img, params)
        images.append(dict(id=image_id, file_name=file_name, width=w, height=h))
        for person, (kp, label) in enumerate(people):
            ann = _annotate(kp, label, owner)
            if ann is not None:
                annotations.append(dict(id=image_id * 100 + person, image_id=image_id, **ann))
        if progress is not None:
            progress(1)
    return dict(info=dict(description=f'leansam synthetic COCO person keypoints ({split})', version='1.0',
                          year=2024, seed=seed),
                licenses=[], images=images, annotations=annotations, categories=[COCO_PERSON_CATEGORY])


def generate_coco_keypoints(out_dir: str, num_train_images: int = 800, num_val_images: int = 100,
                            image_size: Tuple[int, int] = (256, 192), max_people: int = 3, seed: int = 0,
                            ext: str = 'jpg', progress: Optional[Callable[[int], None]] = None) -> dict:
    """Write a synthetic COCO person-keypoints data set.

    Layout: ``out_dir/{train,val}/<image_id>.<ext>`` and
    ``out_dir/annotations/person_keypoints_{train,val}.json``.

    Args:
        out_dir: Output directory (created if needed).
        num_train_images: Images in the train split.
        num_val_images: Images in the val split.
        image_size: ``(width, height)`` of every image.
        max_people: Each image holds 1 to ``max_people`` figures.
        seed: Same seed, same parameters: byte-identical JSON (and images).
        ext: Image format, ``'jpg'`` or ``'png'``.
        progress: Called with 1 after each image (e.g. ``tqdm.update``).

    Returns:
        ``{split: (num_images, num_annotations)}``.
    """
    if not 1 <= max_people < 100:
        raise ValueError(f'max_people must be in [1, 99], got {max_people}')
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    counts = {}
    for split, n in (('train', num_train_images), ('val', num_val_images)):
        coco = generate_split(out_dir, split, n, image_size, max_people, seed, ext, progress)
        with open(osp.join(out_dir, 'annotations', f'person_keypoints_{split}.json'), 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        counts[split] = (len(coco['images']), len(coco['annotations']))
    return counts
