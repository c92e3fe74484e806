//! Monitoring: the Prometheus metrics, the operation log lines, health, status, alerts and
//! drills, seen from outside (a real `serve`, real sockets, the real guest).

mod alerts;
mod health;
mod logs;
mod metrics;
mod status;
