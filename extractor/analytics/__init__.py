"""Pure analytics helpers over what the store holds: no I/O, no clock."""
