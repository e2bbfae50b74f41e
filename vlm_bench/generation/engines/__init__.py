"""Generator engines, each imported only when its catalog entry is chosen."""
