"""Policy files for the built-in packs (the top-level rules/ folder, shipped as package data)."""
