print("swiftlet-ctl: not implemented yet")
