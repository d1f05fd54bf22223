import SwiftletConfig
import XCTest
@testable import SwiftletCore

/// `reload config` decided from two configurations: what applies live, what needs a restart.
final class ReloadPlanTests: XCTestCase {
    private func listener(_ kind: ListenerConfig.Kind = .tcp, port: Int = 1883) -> ListenerConfig {
        ListenerConfig(kind: kind, host: "127.0.0.1", port: port)
    }

    private func config(_ listeners: [ListenerConfig]) -> BrokerConfig {
        var c = BrokerConfig()
        c.listeners = listeners
        return c
    }

    func testNothingChangedPlansNothing() {
        let c = config([listener()])
        let p = ReloadPlan(running: c, file: c)
        XCTAssertNil(p.logLevel)
        XCTAssertNil(p.mqtt)
        XCTAssertTrue(p.mqttChanges.isEmpty && p.listenerLimits.isEmpty && p.needsRestart.isEmpty)
        XCTAssertEqual(p.inForce, c)
    }

    func testMQTTLimitsApplyLiveAndNameWhomTheyReach() {
        let old = config([listener()])
        var new = old
        new.mqtt.maxPacketSize = 512
        new.mqtt.maxRetainedMessages = 10
        let p = ReloadPlan(running: old, file: new)
        XCTAssertEqual(p.mqtt, new.mqtt)
        XCTAssertEqual(p.mqttChanges, ["mqtt.max_packet_size 1048576 -> 512 (new connections)",
                                       "mqtt.max_retained_messages 1000000 -> 10 (at once)"])
        XCTAssertTrue(p.needsRestart.isEmpty)
        XCTAssertEqual(p.inForce, new)
    }

    func testEveryMQTTKeyIsNamedInTheReport() {
        // A key added to MQTTConfig without a name here would change silently.
        XCTAssertEqual(ReloadPlan.mqttKeys.count, Mirror(reflecting: MQTTConfig()).children.count)
        XCTAssertEqual(Set(ReloadPlan.mqttKeys.map { $0.0 }).count, ReloadPlan.mqttKeys.count)
    }

    func testListenerLimitsApplyLiveOtherListenerChangesNeedARestart() {
        let old = config([listener(), listener(.tls, port: 8883), listener(.ws, port: 8083)])
        var new = old
        new.listeners[0].maxConnections = 5
        new.listeners[0].maxConnRate = 7
        new.listeners[2].path = "/other"
        new.listeners[2].maxConnections = 9         // same listener: its other change needs a restart
        let p = ReloadPlan(running: old, file: new)
        XCTAssertEqual(p.listenerLimits.map { $0.name }, [old.listeners[0].name])
        XCTAssertEqual(p.listenerLimits.first?.config.maxConnections, 5)
        XCTAssertEqual(p.tlsListeners, [old.listeners[1].name])
        XCTAssertEqual(p.needsRestart, ["listener \(old.listeners[2].name) (changed other than max_connections, max_conn_rate)"])
        XCTAssertEqual(p.inForce.listeners[0].maxConnections, 5)
        XCTAssertEqual(p.inForce.listeners[2], old.listeners[2], "not applied: stays as it runs")
    }

    func testListenersMatchBySocketNotPosition() {
        let old = config([listener(), listener(.tls, port: 8883)])
        let new = config([listener(.tls, port: 8883), listener(), listener(port: 1999)])
        let p = ReloadPlan(running: old, file: new)
        XCTAssertEqual(p.tlsListeners, [old.listeners[1].name], "certificates still read again")
        XCTAssertEqual(p.needsRestart, ["listener \(new.listeners[2].name) (new)"])
        let gone = ReloadPlan(running: old, file: config([listener()]))
        XCTAssertEqual(gone.needsRestart, ["listener \(old.listeners[1].name) (removed from the file)"])
    }

    func testARestartOnlyChangeIsNamedAgainUntilTheRestart() {
        let old = config([listener()])
        var new = old
        new.persistence.dataDir = "/elsewhere"
        new.logLevel = .debug
        let first = ReloadPlan(running: old, file: new)
        XCTAssertEqual(first.needsRestart, ["persistence"])
        XCTAssertEqual(first.logLevel, .debug)
        let second = ReloadPlan(running: first.inForce, file: new)
        XCTAssertEqual(second.needsRestart, ["persistence"])
        XCTAssertNil(second.logLevel, "already applied")
    }
}
