// @loopwork/service: the microservice framework on loopwork's server API. Re-exports @loopwork/server (and so
// core and tls): one import gives the whole surface.
export * from '@loopwork/server';
// zod, which route and message schemas are written in, so that apps need no import of their own.
export { z } from 'zod';
export * from './framing/index.js';
export { PipelineProtocol, StageProtocol, pipeline } from './pipeline.js';
export type { Endpoint, MessageProtocol, MessageTransport, Stage } from './pipeline.js';
export { json, utf8, validate } from './codecs.js';
export type { JsonOptions, StageErrorHandler, Utf8Options, ValidateOptions } from './codecs.js';
export { handle } from './handle.js';
export * from './message-stages.js';
export type { HandleOptions, MessageContext, MessageHandler } from './handle.js';
export { HttpExchange, http1 } from './http1.js';
export type { ContinueRefusal, ExchangeOutcome, Http1Options, HttpHandlerProtocol } from './http1.js';
export { AppStateError, ConnectionLostError, HttpError, MessageDecodeError, MessageValidationError } from './errors.js';
export type { ValidationIssue } from './errors.js';
export { requestId, requestIdMixin } from './logging.js';
export type { LoggerOption } from './logging.js';
export { App, HTTP_SSL_SHUTDOWN_TIMEOUT, createApp } from './app.js';
export type {
  AppAddress,
  AppOptions,
  CloseResult,
  HealthOptions,
  ListenOptions,
  OnRequestHook,
  OnResponseHook,
  RequestFor,
  RouteDefinition,
  RouteHandler,
  RouteOptions,
  RouteSchema,
  TcpListenerOptions,
  UnixListenerOptions,
} from './app.js';
export { Request } from './request.js';
export type { DefaultHeaders, DefaultParams, DefaultQuery, RouteInfo } from './request.js';
export { Reply } from './reply.js';
export type { InjectOptions, InjectResponse } from './inject.js';
export type { MetricsOptions } from './metrics.js';
export type {
  ErrorHandler,
  OnErrorHook,
  OnSendHook,
  OnSendPayload,
  PreSerializationHook,
  RequestHook,
} from './hooks.js';
