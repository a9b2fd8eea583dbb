"""Choosing and justifying transfer: ``tl advise`` (which backbone, which technique) and
``tl compare`` (learning curves: from scratch vs feature extraction vs fine-tuning)."""
