#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import CLibFuzzer

// `fuzz-mqtt --write-seeds DIR` regenerates Fuzz/corpus/mqtt; anything else is libFuzzer's
// own command line: corpus directories, -max_total_time, a crash file to replay.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--write-seeds" {
    writeSeeds(to: CommandLine.arguments[2])
    exit(0)
}
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzMQTT($0, $1) })
