"""SAM/AUSAM/vSAM for MMPose top-down pose estimation."""
