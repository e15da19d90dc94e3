"""Figures of networks, images and predictions, drawn with torch and PIL, for the callbacks, tasks and
``python -m zoo.visualize``; nothing here is a callback.

- :mod:`zoo.figures.drawing`: grids, captions, heat maps, confusion matrices, boxes and masks over images;
- :mod:`zoo.figures.layers`: layers found by name, and what they compute (forward hooks);
- :mod:`zoo.figures.feature_maps` and :mod:`zoo.figures.filters`: what layers output, and first-layer weights;
- :mod:`zoo.figures.predictions` and :mod:`zoo.figures.overlays`: images with their predicted classes, boxes and
  masks next to the true ones;
- :mod:`zoo.figures.saving`: where a figure goes (a PNG in the run folder, an image in W&B or TensorBoard), the
  one module here that knows about a ``Trainer``.

Import the modules themselves: the package imports none of them, so drawing does not load ``zoo.figures.saving``.
"""
