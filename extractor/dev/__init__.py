"""The simulated workspace, `jobruns demo` and `jobruns bench`: the development side of jobruns."""
