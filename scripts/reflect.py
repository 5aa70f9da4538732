#!/usr/bin/env python3
"""List a Quarry server's services and methods through gRPC reflection only,
as a client that knows nothing else would (grpcio + grpcio-reflection).

    pip install grpcio grpcio-reflection
    python3 scripts/reflect.py 127.0.0.1:50051
"""
import sys

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from google.protobuf.descriptor_pool import DescriptorPool


def main() -> None:
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    channel = grpc.insecure_channel(addr)
    db = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(db)
    for name in sorted(db.get_services()):
        print(name)
        service = pool.FindServiceByName(name)
        for m in service.methods:
            stream_in = "stream " if m.client_streaming else ""
            stream_out = "stream " if m.server_streaming else ""
            print(f"  rpc {m.name}({stream_in}{m.input_type.full_name}) returns ({stream_out}{m.output_type.full_name})")


if __name__ == "__main__":
    main()
