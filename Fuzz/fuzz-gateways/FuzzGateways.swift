// libFuzzer target: what clients send the gateways (docs/fuzzing.md, docs/gateways.md).
//
// The first byte picks the codec, the rest is the input:
// - even: a STOMP byte stream as a connection reads it (`StompDecoder`, the seed's limits,
//   the version from the first byte's bits). Fed whole or one byte at a time, it yields the
//   same frames and stops at the same error; a decoded frame re-encodes and decodes to itself.
// - odd: one MQTT-SN datagram (`SNMessage.decode`). A message it accepts re-encodes to bytes
//   that decode to the same message.
import GatewayMQTTSN
import GatewaySTOMP
import NIOCore

private func stompAll(_ bytes: ArraySlice<UInt8>, version: StompVersion, chunk: Int) -> ([StompInbound], StompDecodeError?) {
    var decoder = StompDecoder()
    decoder.version = version
    var buffer = ByteBuffer()
    var out: [StompInbound] = []
    var rest = bytes
    repeat {
        let n = min(chunk, rest.count)
        buffer.writeBytes(rest.prefix(n))
        rest = rest.dropFirst(n)
        do {
            while let item = try decoder.decode(buffer: &buffer) { out.append(item) }
        } catch let e as StompDecodeError {
            return (out, e)
        } catch {
            preconditionFailure("StompDecoder threw a non-StompDecodeError: \(error)")
        }
    } while !rest.isEmpty
    return (out, nil)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGateways(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    let selector = all[0]
    let input = all[1...]
    if selector & 1 == 0 {
        let version = StompVersion.allCases[Int(selector >> 1) % 3]
        let whole = stompAll(input, version: version, chunk: max(input.count, 1))
        let drip = stompAll(input, version: version, chunk: 1)
        precondition(whole.0 == drip.0 && whole.1 == drip.1, "whole and byte-by-byte STOMP decoding differ")
        for case .frame(let f) in whole.0 {
            var d = StompDecoder(limits: StompLimits(maxHeaders: 1000, maxHeaderLength: 1 << 20, maxBodyLength: 1 << 24))
            d.version = version
            var b = f.encoded(version: version)
            guard case .frame(let g)? = try? d.decode(buffer: &b) else {
                preconditionFailure("a decoded frame does not decode from its own encoding: \(f.command)")
            }
            precondition(g.command == f.command && g.body == f.body, "\(f.command) changed in a round trip")
        }
    } else {
        guard let m = try? SNMessage.decode(ByteBuffer(bytes: input)) else { return 0 }
        precondition((try? SNMessage.decode(m.encoded())) == m, "\(m) does not decode from its own encoding")
    }
    return 0
}
