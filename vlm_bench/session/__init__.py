"""What a session does, without pytest: which items run and what runs after each
(``selection``), the engine loaded once per process (``engine``), the records written as
they arrive and the summary at the end (``records``), and the end-of-session lines
(``terminal``). The video-QA and the generation plugins are glue over these."""
