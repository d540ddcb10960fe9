"""GenEval (paper Table 3; GenEval column of Table 4), one upstream protocol in one package.

Everything follows djghosh13/geneval at ``af4902f``. The two suites (``suites/geneval.py``,
``suites/geneval_detect.py``) and the command line (:mod:`harness.geneval.cli`) are thin; the
protocol lives here, one job per module:

==================  ==========================================================================
``prompts``         the shipped official prompt file and COCO class names (sha256-pinned)
``folder``          the official image-folder layout: writing names, reading and checking folders
``plan``            the work items of both suites
``config``          the suites' typed configs (filled from their YAML)
``hf_mask2former``  the default detector: Mask2Former Swin-S through transformers, GenEval's weights
``convert``         mmdet checkpoint -> transformers weights (strict key/shape mapping)
``preprocess``      mmdet 2's test pipeline without mmdet (OpenCV resize, pad 128, normalise)
``postprocess``     mmdet's instance post-processing on raw logits -> the official per-class lists
``detector``        the mmdet backend (``checkpoint``: 2.x weights; ``mmcv_ops``: no compiled ops, any device)
``parity``          both backends on the same images and weights, compared (``geneval parity``)
``color``           the CLIP ViT-L-14 colour classifier
``records``         raw detector output -> compact JSON records (:func:`records.image_record`), COCO RLE
``detection``       the detect stage: readiness checks, model loading, one record per item
``gate``            the sanity gate: known images the models must get right
``rules``           the scoring rules, ported, applied to records
``scoring``         gate + rules + completeness -> the summary and Table 3
``provenance``      what produced the images and the detections
==================  ==========================================================================
"""
