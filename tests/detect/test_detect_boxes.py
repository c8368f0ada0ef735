"""Pseudo boxes from heatmaps: threshold rule, largest connected component, tight box."""
import numpy as np
import torch

from pipeline.detect.pseudo_boxes import component_boxes, heatmap_boxes, threshold_mask, upsample


def test_threshold_is_beta_max_plus_one_minus_beta_mean():
    heat = np.array([[0.0, 1.0], [2.0, 5.0]])  # max 5, mean 2
    assert threshold_mask(heat, 1.0).tolist() == [[False, False], [False, True]]   # thr 5
    assert threshold_mask(heat, 0.0).tolist() == [[False, False], [True, True]]    # thr 2
    assert threshold_mask(heat, 0.5).tolist() == [[False, False], [False, True]]   # thr 3.5
    assert threshold_mask(heat, 0.25).tolist() == [[False, False], [False, True]]  # thr 2.75
    assert threshold_mask(heat + 10, 0.5).tolist() == threshold_mask(heat, 0.5).tolist()  # shift-invariant


def test_largest_component_and_its_tight_box():
    mask = np.zeros((10, 20), bool)
    mask[1:3, 1:3] = True            # 4 pixels
    mask[4:9, 10:17] = True          # 35 pixels: the largest
    mask[0, 19] = True               # 1 pixel
    box = component_boxes(mask)
    np.testing.assert_allclose(box, [[10 / 20, 4 / 10, 17 / 20, 9 / 10]])
    two = component_boxes(mask, max_boxes=2)
    np.testing.assert_allclose(two[1], [1 / 20, 1 / 10, 3 / 20, 3 / 10])
    assert component_boxes(np.zeros((4, 4), bool)).shape == (0, 4)


def test_diagonal_touching_pixels_are_separate_components():
    mask = np.zeros((6, 6), bool)
    mask[0:2, 0:2] = True   # 4 pixels
    mask[2:5, 2:5] = True   # 9 pixels, touches the first only at a corner
    np.testing.assert_allclose(component_boxes(mask), [[2 / 6, 2 / 6, 5 / 6, 5 / 6]])


def test_heatmap_boxes_on_frame_sized_and_coarse_maps():
    heat = torch.zeros(2, 8, 8)
    heat[0, 2:5, 3:7] = 1.0                           # a blob, frame-sized map (no resampling)
    heat[1, 1, 1] = 1.0                               # one hot cell of a coarse map
    boxes = heatmap_boxes(heat[:1], (8, 8), beta=0.5)
    np.testing.assert_allclose(boxes[0], [[3 / 8, 2 / 8, 7 / 8, 5 / 8]])
    coarse = heatmap_boxes(heat[1:], (64, 64), beta=0.5)[0][0]   # 8 px cells upsampled to 64 px
    cx, cy = (coarse[0] + coarse[2]) / 2, (coarse[1] + coarse[3]) / 2
    assert abs(cx - 1.5 / 8) < 0.02 and abs(cy - 1.5 / 8) < 0.02   # centred on the hot cell
    assert 0.05 < coarse[2] - coarse[0] < 0.25
    assert upsample(heat, (8, 8)).allclose(heat)       # same size: identity
