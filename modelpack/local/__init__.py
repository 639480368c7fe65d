"""The local runtime behind `modelpack run`: the operator's job on one machine, no cluster.

Same YAML, same validation, same placement function; servers are local processes and the load
generator runs in this process.
"""
