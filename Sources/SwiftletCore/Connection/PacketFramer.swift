import MQTTCodec
import NIOCore

/// Splits a connection's byte stream into packets, decoding straight from each read's buffer
/// (a packet's payload, and a forwarded packet's bytes, are slices of it: see `Message`).
///
/// Only a packet that straddles two reads is copied: its start goes into a buffer sized for
/// the whole packet (known from the fixed header, checked against the maximum packet size
/// first), and the next read completes it with just the bytes it lacks. NIO's cumulating
/// processor instead kept the read buffer and compacted it after decoding, which copies the
/// remainder into new memory whenever a decoded slice still shares the buffer.
struct PacketFramer {
    var decoder: MQTTPacketDecoder
    /// The start of a packet that straddles reads (owned: nothing else references it).
    private var partial: ByteBuffer?

    /// The most a straddling packet's buffer is sized ahead of the bytes received.
    static let presize = 65_536

    init(_ decoder: MQTTPacketDecoder) { self.decoder = decoder }

    /// Bytes held for a packet not yet complete.
    var pendingBytes: Int { partial?.readableBytes ?? 0 }

    mutating func process(_ bytes: ByteBuffer, _ receive: (Packet) -> Void) throws {
        var input = bytes
        if var acc = partial {
            partial = nil
            // At most four more bytes make the fixed header readable.
            var total = try decoder.decoder.packetLength(acc)
            while total == nil, let b = input.readInteger(as: UInt8.self) {
                acc.writeInteger(b)
                total = try decoder.decoder.packetLength(acc)
            }
            guard let total else { partial = acc; return }
            let need = total - acc.readableBytes
            if input.readableBytes < need {
                acc.writeBuffer(&input)
                partial = acc
                return
            }
            var rest = input.readSlice(length: need)!
            acc.writeBuffer(&rest)
            if let packet = try decoder.decode(buffer: &acc) { receive(packet) }
        }
        while input.readableBytes > 0, let packet = try decoder.decode(buffer: &input) { receive(packet) }
        guard input.readableBytes > 0 else { return }
        // A packet starts here and ends in a later read: keep its start in a buffer of its own,
        // sized for the whole packet when the length is known (decode checked it is allowed),
        // up to 64 KiB ahead of the bytes (a larger one grows as its bytes arrive).
        let size = try decoder.decoder.packetLength(input) ?? 5
        var acc = ByteBufferAllocator().buffer(capacity: max(min(size, Self.presize), input.readableBytes))
        acc.writeBuffer(&input)
        partial = acc
    }
}
