// libFuzzer target: the configuration loader on arbitrary text (docs/fuzzing.md).
//
// `ConfigLoader.load(path:)` reads the file and hands its text to `ConfigLoader.parse`, which
// this target calls with the input bytes as UTF-8 (invalid sequences replaced, as a file the
// loader could read). Beyond "no crash, no hang": every refusal is a `ConfigError` (the
// operator is always told the key, and the line when known), never another error type.
import SwiftletConfig

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        _ = try ConfigLoader.parse(text)
    } catch let e as ConfigError {
        // The key may be empty: `'' = 1` is a valid TOML key that is not allowed here.
        precondition(!e.message.isEmpty, "ConfigError without a message: \(e)")
        if let line = e.line { precondition(line >= 0, "ConfigError at line \(line)") }
    } catch {
        preconditionFailure("ConfigLoader.parse threw \(type(of: error)), not ConfigError: \(error)")
    }
    return 0
}
