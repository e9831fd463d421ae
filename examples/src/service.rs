//! The echo service: answers each request with the message and the identity
//! of the instance that served it, so a caller can see where the balancer
//! sent it.

use tonic::{Request, Response, Status};

use crate::echo::echo_server::Echo;
use crate::echo::{EchoReply, EchoRequest};

/// One instance's echo service.
#[derive(Debug, Clone)]
pub struct EchoService {
    pub instance_id: String,
    pub addr: String,
    pub zone: String,
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            message: request.into_inner().message,
            instance_id: self.instance_id.clone(),
            addr: self.addr.clone(),
            zone: self.zone.clone(),
        }))
    }
}
