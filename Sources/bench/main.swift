// swiftlet-bench: placeholder until the load generator lands (issue 3).
print("swiftlet-bench: not yet implemented")
