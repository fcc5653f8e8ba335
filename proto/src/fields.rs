//! Field numbers that hand-written encoders and parsers use: the flow writer
//! ([`crate::wire`]), the agent's flow records and observer entries, and the
//! relay's pass-through of `GetFlowsResponse`. Each constant is named after its
//! field (case and underscores aside), and [`ALL`] lists every one with its
//! message so the wire-compatibility test checks them against the public Hubble
//! API descriptor.

macro_rules! fields {
    ($($(#[$doc:meta])* $module:ident = $message:literal { $($name:ident = $number:literal,)* })*) => {
        $(
            $(#[$doc])*
            pub mod $module {
                $(pub const $name: u32 = $number;)*
            }
        )*
        /// Every constant above: (full message name, constant name, number).
        pub const ALL: &[(&str, &str, u32)] = &[$($(($message, stringify!($name), $module::$name),)*)*];
    };
}

fields! {
    /// `flow.Flow`.
    flow = "flow.Flow" {
        TIME = 1,
        VERDICT = 2,
        DROP_REASON = 3,
        ETHERNET = 4,
        IP = 5,
        L4 = 6,
        SOURCE = 8,
        DESTINATION = 9,
        TYPE = 10,
        NODE_NAME = 11,
        SOURCE_NAMES = 13,
        DESTINATION_NAMES = 14,
        L7 = 15,
        REPLY = 16,
        EVENT_TYPE = 19,
        SOURCE_SERVICE = 20,
        DESTINATION_SERVICE = 21,
        TRAFFIC_DIRECTION = 22,
        POLICY_MATCH_TYPE = 23,
        TRACE_OBSERVATION_POINT = 24,
        DROP_REASON_DESC = 25,
        IS_REPLY = 26,
        DEBUG_CAPTURE_POINT = 27,
        INTERFACE = 28,
        PROXY_PORT = 29,
        TRACE_CONTEXT = 30,
        SOCK_XLATE_POINT = 31,
        SOCKET_COOKIE = 32,
        CGROUP_ID = 33,
        UUID = 34,
        AUTH_TYPE = 35,
        TRACE_REASON = 36,
        NODE_LABELS = 37,
        FILE = 38,
        TUNNEL = 39,
        IP_TRACE_ID = 40,
        EMITTER = 41,
        EGRESS_ALLOWED_BY = 21001,
        INGRESS_ALLOWED_BY = 21002,
        EGRESS_DENIED_BY = 21004,
        INGRESS_DENIED_BY = 21005,
        POLICY_LOG = 21006,
        AGGREGATE = 21007,
        SUMMARY = 100000,
        EXTENSIONS = 150000,
    }
    /// `flow.IP`.
    ip = "flow.IP" {
        SOURCE = 1,
        DESTINATION = 2,
        IP_VERSION = 3,
        ENCRYPTED = 4,
        SOURCE_XLATED = 5,
    }
    /// `flow.Ethernet`.
    ethernet = "flow.Ethernet" {
        SOURCE = 1,
        DESTINATION = 2,
    }
    /// `flow.NetworkInterface`.
    network_interface = "flow.NetworkInterface" {
        INDEX = 1,
        NAME = 2,
    }
    /// `flow.Emitter`.
    emitter = "flow.Emitter" {
        NAME = 1,
        VERSION = 2,
    }
    /// `flow.CiliumEventType`.
    cilium_event_type = "flow.CiliumEventType" {
        TYPE = 1,
        SUB_TYPE = 2,
    }
    /// `flow.Layer4` (a oneof).
    layer4 = "flow.Layer4" {
        TCP = 1,
        UDP = 2,
        ICMPV4 = 3,
        ICMPV6 = 4,
        SCTP = 5,
        VRRP = 6,
        IGMP = 7,
    }
    /// `flow.TCP`; `flow.UDP` and `flow.SCTP` number their ports the same way.
    tcp = "flow.TCP" {
        SOURCE_PORT = 1,
        DESTINATION_PORT = 2,
        FLAGS = 3,
    }
    /// `flow.UDP`.
    udp = "flow.UDP" {
        SOURCE_PORT = 1,
        DESTINATION_PORT = 2,
    }
    /// `flow.SCTP`.
    sctp = "flow.SCTP" {
        SOURCE_PORT = 1,
        DESTINATION_PORT = 2,
    }
    /// `flow.ICMPv4`; `flow.ICMPv6` is numbered the same way.
    icmpv4 = "flow.ICMPv4" {
        TYPE = 1,
        CODE = 2,
    }
    /// `flow.ICMPv6`.
    icmpv6 = "flow.ICMPv6" {
        TYPE = 1,
        CODE = 2,
    }
    /// `flow.TCPFlags`, in field-number order.
    tcp_flags = "flow.TCPFlags" {
        FIN = 1,
        SYN = 2,
        RST = 3,
        PSH = 4,
        ACK = 5,
        URG = 6,
        ECE = 7,
        CWR = 8,
        NS = 9,
    }
    /// `observer.GetFlowsResponse`.
    get_flows_response = "observer.GetFlowsResponse" {
        FLOW = 1,
        NODE_STATUS = 2,
        LOST_EVENTS = 3,
        NODE_NAME = 1000,
        TIME = 1001,
    }
    /// `google.protobuf.Timestamp`.
    timestamp = "google.protobuf.Timestamp" {
        SECONDS = 1,
        NANOS = 2,
    }
    /// `google.protobuf.BoolValue`.
    bool_value = "google.protobuf.BoolValue" {
        VALUE = 1,
    }
}
