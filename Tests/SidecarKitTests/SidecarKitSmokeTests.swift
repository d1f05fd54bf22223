import SidecarKit
import XCTest

final class SidecarKitSmokeTests: XCTestCase {
    func testProtocolVersion() { XCTAssertEqual(SidecarKit.protocolVersion, 1) }
}
