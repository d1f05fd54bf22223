import NIOCore

/// The receive buffer sizing of every MQTT connection: NIO's adaptive policy (double after a
/// read that filled the buffer, halve after two reads that used at most half of it), starting
/// at 128 bytes and kept within 64 B...64 KiB.
///
/// Each channel keeps its last receive buffer for the next read, so the starting size is what
/// an idle connection holds: NIO's default of 2048 B was most of an idle connection's memory,
/// while 128 B holds a typical CONNECT and a busy connection reaches 64 KiB within ten reads.
/// The state fits in an existential's inline storage (NIO's `AdaptiveRecvByteBufferAllocator`
/// does not, and costs every channel a boxed copy).
struct CompactRecvAllocator: RecvByteBufferAllocator {
    static let minimum: UInt32 = 64
    static let initial: UInt32 = 128
    static let maximum: UInt32 = 65_536

    private var next = CompactRecvAllocator.initial
    private var decreaseNow = false

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(next))
    }

    func nextBufferSize() -> Int? { Int(next) }

    mutating func record(actualReadBytes: Int) -> Bool {
        let lower = next >> 1
        if actualReadBytes <= Int(lower) && lower >= Self.minimum {
            if decreaseNow {
                next = lower
                decreaseNow = false
            } else {
                decreaseNow = true
            }
            return false
        }
        decreaseNow = false
        if actualReadBytes >= Int(next) && next < Self.maximum {
            next <<= 1
            return true
        }
        return false
    }
}
