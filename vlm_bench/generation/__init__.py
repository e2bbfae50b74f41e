"""Video generation, the mirror of the video-QA path: VMEvalKit task pair -> generator ->
video in VMEvalKit's output tree -> record. ``catalog`` (configs/generators/*.yaml),
``base`` (settings, task, result, the generator protocol), ``engines`` (diffusers),
``tree`` (the output tree and metadata.json), ``run`` (one task, as a plain function),
``plugin`` (pytest glue), ``judge`` (generate-then-judge summaries)."""
