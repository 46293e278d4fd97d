#!/usr/bin/env python3
"""Write the pose demo's synthetic data set (COCO person-keypoints format).

    python tools/make_pose_demo_data.py [--out data/pose_demo] [--num-train N] [--num-val M]
                                        [--seed S] [--force]

Idempotent: when ``OUT/meta.json`` records the same parameters, nothing is rewritten.
The demo configs under ``configs/pose/demo/`` read ``data/pose_demo``.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tqdm import tqdm  # noqa: E402

from pose_sam.data.synthetic_coco import generate_coco_keypoints  # noqa: E402

#: Bump when the generator's output changes, so that old data sets are rewritten.
GENERATOR_VERSION = 1


def parse_args():
    parser = argparse.ArgumentParser(description='Write a synthetic COCO person-keypoints data set')
    parser.add_argument('--out', default='data/pose_demo', help='output directory')
    parser.add_argument('--num-train', type=int, default=800, help='train images')
    parser.add_argument('--num-val', type=int, default=100, help='val images')
    parser.add_argument('--image-size', type=int, nargs=2, default=(256, 192), metavar=('W', 'H'))
    parser.add_argument('--max-people', type=int, default=3, help='figures per image: 1 to this')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='rewrite even if the data set is up to date')
    return parser.parse_args()


def main():
    args = parse_args()
    meta = dict(generator_version=GENERATOR_VERSION, num_train_images=args.num_train,
                num_val_images=args.num_val, image_size=list(args.image_size),
                max_people=args.max_people, seed=args.seed)
    meta_file = osp.join(args.out, 'meta.json')
    if not args.force and osp.isfile(meta_file):
        with open(meta_file) as f:
            if json.load(f).get('params') == meta:
                print(f'{args.out} is up to date ({meta_file}); nothing written.')
                return
    if osp.isfile(meta_file):
        os.remove(meta_file)  # an interrupted run must not look complete
    with tqdm(total=args.num_train + args.num_val, desc='images', unit='img') as bar:
        counts = generate_coco_keypoints(args.out, args.num_train, args.num_val, tuple(args.image_size),
                                         args.max_people, args.seed, progress=bar.update)
    with open(meta_file, 'w') as f:
        json.dump(dict(params=meta, counts={k: dict(images=v[0], annotations=v[1]) for k, v in counts.items()}),
                  f, indent=1)
    for split, (n_img, n_ann) in counts.items():
        print(f'{split}: {n_img} images, {n_ann} people -> {osp.join(args.out, split)}/, '
              f'{osp.join(args.out, "annotations", f"person_keypoints_{split}.json")}')


if __name__ == '__main__':
    main()
