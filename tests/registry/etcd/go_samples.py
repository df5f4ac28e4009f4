"""Keys and values written by go-plugins v1.0.0 ``etcdv3``, captured from a go-micro v1.0
program (the layout is in docs/registry-etcd.md)."""

from __future__ import annotations

GREETER_KEY = (
    "/micro-registry/go.micro.srv.greeter/go.micro.srv.greeter-7cd53b92-19a4-4d1c-82c0-cae85962f049"
)
GREETER_VALUE = (
    '{"name":"go.micro.srv.greeter","version":"latest","metadata":null,"endpoints":[{"name":'
    '"Say.Fail","request":{"name":"Request","type":"Request","values":[{"name":"name","type":'
    '"string","values":null}]},"response":{"name":"Response","type":"Response","values":[{"name"'
    ':"msg","type":"string","values":null}]},"metadata":{"stream":"false"}},{"name":"Say.Hello",'
    '"request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string",'
    '"values":null}]},"response":{"name":"Response","type":"Response","values":[{"name":"msg",'
    '"type":"string","values":null}]},"metadata":{"stream":"false"}},{"name":"Say.Stream",'
    '"request":{"name":"Context","type":"Context","values":null},"response":{"name":"Stream",'
    '"type":"Stream","values":null},"metadata":{"stream":"true"}},{"name":"Func","request":'
    '{"name":"Event","type":"Event","values":[{"name":"id","type":"string","values":null},'
    '{"name":"message","type":"string","values":null}]},"response":null,"metadata":'
    '{"subscriber":"true","topic":"go.micro.topic.greeting"}}],"nodes":[{"id":'
    '"go.micro.srv.greeter-7cd53b92-19a4-4d1c-82c0-cae85962f049","address":"127.0.0.1","port":'
    '50061,"metadata":{"broker":"http","peer":"go-micro-v1.0.0","protocol":"mucp","registry":'
    '"etcdv3","server":"rpc","transport":"http"}}]}'
)
BROKER_KEY = (
    "/micro-registry/topic:go.micro.topic.greeting/"
    "broker-52d8cc1e-6ad6-4e5d-8955-f85f682b0957.ce2a0062-e170-4117-a5c9-029e9622cb33"
)
BROKER_VALUE = (
    '{"name":"topic:go.micro.topic.greeting","version":"ff.http.broadcast","metadata":null,'
    '"endpoints":null,"nodes":[{"id":"broker-52d8cc1e-6ad6-4e5d-8955-f85f682b0957.'
    'ce2a0062-e170-4117-a5c9-029e9622cb33","address":"127.0.0.1","port":50062,"metadata":'
    '{"secure":"false"}}]}'
)
