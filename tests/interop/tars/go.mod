module baton-tars-peer

go 1.21

require github.com/TarsCloud/TarsGo v1.4.5

require go.uber.org/automaxprocs v1.5.2 // indirect
