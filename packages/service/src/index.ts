// @loopwork/service: the microservice framework on loopwork's server API.
export {};
