#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import CLibFuzzer

// libFuzzer's own command line: corpus directories, -max_total_time, a crash file to replay.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzGateways($0, $1) })
