"""Readers of the datasets' own file formats: plain functions and map-style torch Datasets, no Lightning.

``idx`` (MNIST family), ``cifar`` (python pickles), ``voc`` (XML annotations, palette PNG masks), ``coco``
(annotation json, polygon and RLE masks), ``detection`` (the per-image records both become, and the Dataset
that decodes them) and ``images`` (image files and scikit-image's sample photos). The DataModules in
:mod:`zoo.data` choose the splits and transforms and build the loaders.
"""
