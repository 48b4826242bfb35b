"""Analysis: plain functions over traces and the model, returning typed data for the views and export.

Each module answers one question about a forward pass (where attention goes, what each depth
would predict, what one run's numbers say) with dataclasses of plain numbers and texts: the
views draw them, export turns them into JSON, and neither computes anything of its own.
"""
