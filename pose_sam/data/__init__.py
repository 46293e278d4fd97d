"""Data for the pose demo: a synthetic data set in COCO person-keypoints format."""
from .synthetic_coco import COCO_KEYPOINT_NAMES, COCO_SKELETON, generate_coco_keypoints, generate_split

__all__ = ['COCO_KEYPOINT_NAMES', 'COCO_SKELETON', 'generate_coco_keypoints', 'generate_split']
