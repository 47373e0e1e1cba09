/** Element-wise arithmetic with numpy broadcasting, and the unary functions the losses need. */
import { kernels, type Buf } from '../backend.js';
import { BinaryOp, UnaryOp } from '../kernels.js';
import { Tensor, shapeSize } from '../tensor.js';
import { broadcastShapes, broadcastStrides, sumToShape } from './broadcast.js';

const binaryNames = ['add', 'sub', 'mul', 'div'] as const;

function binaryRaw(
  op: BinaryOp,
  a: Buf,
  aShape: readonly number[],
  b: Buf,
  bShape: readonly number[],
  outShape: number[],
): Buf {
  const out = kernels().empty(shapeSize(outShape));
  kernels().binary(op, a, broadcastStrides(aShape, outShape), b, broadcastStrides(bShape, outShape), out, outShape);
  return out;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const name = binaryNames[op];
  const outShape = broadcastShapes(name, a.shape, b.shape);
  const out = new Tensor(binaryRaw(op, a.buf, a.shape, b.buf, b.shape, outShape), outShape);
  return Tensor.record(out, name, [a, b], (g) => {
    const gs = outShape;
    switch (op) {
      case BinaryOp.Add:
        return [a.tracksGrad ? sumToShape(g, gs, a.shape) : null, b.tracksGrad ? sumToShape(g, gs, b.shape) : null];
      case BinaryOp.Sub: {
        let gb: Buf | null = null;
        if (b.tracksGrad) {
          gb = kernels().clone(sumToShape(g, gs, b.shape));
          kernels().unary(UnaryOp.Neg, gb, gb);
        }
        return [a.tracksGrad ? sumToShape(g, gs, a.shape) : null, gb];
      }
      case BinaryOp.Mul:
        return [
          a.tracksGrad ? sumToShape(binaryRaw(BinaryOp.Mul, g, gs, b.buf, b.shape, gs), gs, a.shape) : null,
          b.tracksGrad ? sumToShape(binaryRaw(BinaryOp.Mul, g, gs, a.buf, a.shape, gs), gs, b.shape) : null,
        ];
      case BinaryOp.Div: {
        const ga = a.tracksGrad || b.tracksGrad ? binaryRaw(BinaryOp.Div, g, gs, b.buf, b.shape, gs) : null;
        let gb: Buf | null = null;
        if (b.tracksGrad && ga) {
          // ∂(a/b)/∂b = −(a/b)/b = −out/b, so gb = −g/b · out
          const t = binaryRaw(BinaryOp.Mul, ga, gs, out.buf, gs, gs);
          kernels().unary(UnaryOp.Neg, t, t);
          gb = sumToShape(t, gs, b.shape);
        }
        return [a.tracksGrad && ga ? sumToShape(ga, gs, a.shape) : null, gb];
      }
    }
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binary(BinaryOp.Add, a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary(BinaryOp.Sub, a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary(BinaryOp.Mul, a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary(BinaryOp.Div, a, b);

/** a·alpha + beta, element-wise, for scalar alpha and beta. */
export function affine(a: Tensor, alpha: number, beta = 0): Tensor {
  const out = kernels().alloc(a.size);
  if (beta !== 0) kernels().fill(out, beta);
  kernels().axpby(alpha, a.buf, beta === 0 ? 0 : 1, out);
  return Tensor.record(new Tensor(out, a.shape), 'affine', [a], (g) => {
    const ga = kernels().alloc(g.length);
    kernels().axpby(alpha, g, 0, ga);
    return [ga];
  });
}

export const scale = (a: Tensor, alpha: number): Tensor => affine(a, alpha, 0);
export const neg = (a: Tensor): Tensor => affine(a, -1, 0);

function unary(op: UnaryOp, name: string, a: Tensor, grad: (g: Buf, x: Buf, y: Buf) => Buf): Tensor {
  const y = kernels().alloc(a.size);
  kernels().unary(op, a.buf, y);
  const out = new Tensor(y, a.shape);
  return Tensor.record(out, name, [a], (g) => [grad(g, a.buf, y)]);
}

function mulRaw(x: Buf, y: Buf): Buf {
  const out = kernels().alloc(x.length);
  kernels().binary(BinaryOp.Mul, x, [1], y, [1], out, [x.length]);
  return out;
}

function divRaw(x: Buf, y: Buf): Buf {
  const out = kernels().alloc(x.length);
  kernels().binary(BinaryOp.Div, x, [1], y, [1], out, [x.length]);
  return out;
}

export const exp = (a: Tensor): Tensor => unary(UnaryOp.Exp, 'exp', a, (g, _x, y) => mulRaw(g, y));
export const log = (a: Tensor): Tensor => unary(UnaryOp.Log, 'log', a, (g, x) => divRaw(g, x));
export const sqrt = (a: Tensor): Tensor =>
  unary(UnaryOp.Sqrt, 'sqrt', a, (g, _x, y) => {
    const t = divRaw(g, y);
    kernels().axpby(0.5, t, 0, t);
    return t;
  });
export const square = (a: Tensor): Tensor =>
  unary(UnaryOp.Square, 'square', a, (g, x) => {
    const t = mulRaw(g, x);
    kernels().axpby(2, t, 0, t);
    return t;
  });
