"""Audio-supervised object detection (Afouras, Asano et al., CVPR 2022): heatmaps of an
audio-visual model give pseudo boxes, its self-labelled clusters their classes, and a
Faster R-CNN trained on them detects objects in images without any audio."""
